from django.apps import AppConfig


class DropLogConfig(AppConfig):
    name = "sgweb.droplog"
    label = "droplog"
    verbose_name = "Drop log"
    default_auto_field = "django.db.models.BigAutoField"
