"""WebSocket routes of the live protocol (mounted in `sgweb.asgi.websocket_urlpatterns`)."""

from django.urls import path

from sgweb.live import consumers

websocket_urlpatterns = [
    path("ws/ports/<str:port_id>", consumers.PortConsumer.as_asgi()),
    path("ws/security-groups/<str:group_id>", consumers.SecurityGroupConsumer.as_asgi()),
    path("ws/hosts/<str:name>", consumers.HostConsumer.as_asgi()),
    path("ws/events", consumers.EventsConsumer.as_asgi()),
    path("ws/traces/<str:trace_id>", consumers.TraceConsumer.as_asgi()),
]
