from django.apps import AppConfig


class PacketLogsConfig(AppConfig):
    name = "sgweb.packetlogs"
    default_auto_field = "django.db.models.BigAutoField"
