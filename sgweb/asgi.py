"""ASGI entry point: Django for HTTP, Channels for the live counter and trace websockets."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sgweb.settings")
# Django must be set up before anything imports models (consumers do).
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.conf import settings  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402
from django.urls import URLPattern  # noqa: E402

from sgweb.gctune import tune_for_serving  # noqa: E402
from sgweb.live.routing import websocket_urlpatterns as live_routes  # noqa: E402
from sgweb.traces.routing import websocket_urlpatterns as trace_routes  # noqa: E402

websocket_urlpatterns: list[URLPattern] = [*live_routes, *trace_routes]

application = ProtocolTypeRouter(
    {
        # Daphne serves no static files itself; SERVE_STATIC (default on) lets one process
        # serve the dashboard's CSS/JS straight from static/ without collectstatic.
        "http": ASGIStaticFilesHandler(django_asgi_app)
        if settings.SERVE_STATIC
        else django_asgi_app,
        "websocket": AllowedHostsOriginValidator(
            AuthMiddlewareStack(URLRouter(websocket_urlpatterns))
        ),
    }
)

tune_for_serving()
