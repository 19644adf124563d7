from django.apps import AppConfig


class SecurityConfig(AppConfig):
    name = "sgweb.security"
    default_auto_field = "django.db.models.BigAutoField"
