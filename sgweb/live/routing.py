"""WebSocket routes of the live protocol (mounted by `sgweb.asgi`)."""

from django.urls import path

from sgweb.live.consumers.drops import DropsConsumer
from sgweb.live.consumers.groups import SecurityGroupConsumer
from sgweb.live.consumers.hosts import EventsConsumer, HostConsumer
from sgweb.live.consumers.ports import PortConsumer
from sgweb.live.consumers.routers import RouterConsumer

websocket_urlpatterns = [
    path("ws/ports/<str:port_id>", PortConsumer.as_asgi()),
    path("ws/security-groups/<str:group_id>", SecurityGroupConsumer.as_asgi()),
    path("ws/routers/<str:router_id>", RouterConsumer.as_asgi()),
    path("ws/hosts/<path:name>", HostConsumer.as_asgi()),  # any host name, slashes too
    path("ws/events", EventsConsumer.as_asgi()),
    path("ws/drops", DropsConsumer.as_asgi()),
]
