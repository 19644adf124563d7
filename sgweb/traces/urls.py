"""`/api/traces` routes (mounted in `sgweb.urls`)."""

from django.urls import path

from sgweb.traces.api import TraceDetailView, TraceListView

urlpatterns = [
    path("", TraceListView.as_view(), name="api-traces"),
    path("/<str:trace_id>", TraceDetailView.as_view(), name="api-trace"),
]
