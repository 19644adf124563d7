from django.apps import AppConfig


class NetworksConfig(AppConfig):
    name = "sgweb.networks"
    default_auto_field = "django.db.models.BigAutoField"
