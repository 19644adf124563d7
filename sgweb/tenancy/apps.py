from django.apps import AppConfig


class TenancyConfig(AppConfig):
    name = "sgweb.tenancy"
    default_auto_field = "django.db.models.BigAutoField"
