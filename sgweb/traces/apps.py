from django.apps import AppConfig


class TracesConfig(AppConfig):
    name = "sgweb.traces"
    label = "traces"
    verbose_name = "Packet traces"
    default_auto_field = "django.db.models.BigAutoField"
