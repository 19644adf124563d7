from django.apps import AppConfig


class OperationsConfig(AppConfig):
    """Running the product: `manage.py up` and its demo data (above every other app)."""

    name = "sgweb.operations"
    default_auto_field = "django.db.models.BigAutoField"
