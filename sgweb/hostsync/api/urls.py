"""This app's routes under /networking (mounted by `sgweb.urls`)."""

from django.urls import re_path

from sgweb.hostsync.api.views import HostListView, HostView

JSON = r"(?:\.json)?"

urlpatterns = [
    re_path(rf"^/v2\.0/sgweb-hosts{JSON}$", HostListView.as_view(), name="sgweb-hosts"),
    # Any name, slashes included (percent-encoded by the client, decoded by the server).
    re_path(r"^/v2\.0/sgweb-hosts/(?P<name>.+)$", HostView.as_view(), name="sgweb-host"),
]
