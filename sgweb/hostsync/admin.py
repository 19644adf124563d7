"""Host agent history in Django's admin (the dashboard has its own host pages)."""

from __future__ import annotations

from django.contrib import admin

from sgweb.hostsync.models import HostEvent, PublishIntent


@admin.register(HostEvent)
class HostEventAdmin(admin.ModelAdmin):
    list_display = ("at", "host", "kind", "revision", "duration_ms", "message")
    list_filter = ("kind",)
    search_fields = ("host__name", "message")
    list_select_related = ("host",)
    readonly_fields = ("host", "at", "kind", "revision", "duration_ms", "message", "detail")

    def has_add_permission(self, request: object) -> bool:
        return False


@admin.register(PublishIntent)
class PublishIntentAdmin(admin.ModelAdmin):
    list_display = ("host_name", "created_at", "reason", "attempts", "last_error")
