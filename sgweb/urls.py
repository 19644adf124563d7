"""Top-level routes: the Neutron API (each app declares its own), its OpenAPI document, the
traces API, login, and the dashboard."""

from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from sgweb.accounting.api import urls as accounting_api
from sgweb.accounting.metrics import metrics_view
from sgweb.api import urls as neutron
from sgweb.droplog.api import urls as droplog_api
from sgweb.fwaas.api import urls as fwaas_api
from sgweb.hostsync.api import urls as hostsync_api
from sgweb.networks.api import urls as networks_api
from sgweb.packetlogs.api import urls as packetlogs_api
from sgweb.routers.api import urls as routers_api
from sgweb.security.api import urls as security_api

networking = [
    *neutron.urlpatterns,
    *security_api.urlpatterns,
    *networks_api.urlpatterns,
    *packetlogs_api.urlpatterns,
    *routers_api.urlpatterns,
    *fwaas_api.urlpatterns,
    *accounting_api.urlpatterns,
    *droplog_api.urlpatterns,
    *hostsync_api.urlpatterns,
    neutron.not_found,
]

urlpatterns = [
    path("networking", include(networking)),
    path("api/traces", include("sgweb.traces.urls")),
    path("metrics", metrics_view, name="metrics"),
    path("api/schema", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
    path("accounts/login", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout", auth_views.LogoutView.as_view(), name="logout"),
    path("", include("sgweb.dashboard.urls")),
]
