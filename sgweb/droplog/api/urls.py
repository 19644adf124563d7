"""This app's routes beside the Neutron resources (mounted at /networking by `sgweb.urls`)."""

from django.urls import re_path

from sgweb.api.urls import JSON
from sgweb.droplog.api.views import DropsView

urlpatterns = [
    re_path(rf"^/v2\.0/sgweb-drops{JSON}$", DropsView.as_view(), name="neutron-sgweb-drops"),
]
