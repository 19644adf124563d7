"""The trace socket's route (mounted by `sgweb.asgi`)."""

from django.urls import path

from sgweb.traces.consumers import TraceConsumer

websocket_urlpatterns = [
    path("ws/traces/<str:trace_id>", TraceConsumer.as_asgi()),
]
