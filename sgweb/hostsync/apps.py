from django.apps import AppConfig


class HostSyncConfig(AppConfig):
    name = "sgweb.hostsync"
    label = "hostsync"
    verbose_name = "Host synchronisation"
    default_auto_field = "django.db.models.BigAutoField"
