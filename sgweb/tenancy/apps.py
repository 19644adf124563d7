from django.apps import AppConfig


class TenancyConfig(AppConfig):
    name = "sgweb.tenancy"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Live sockets hear of every change of their user's access (sgweb.tenancy.signals).
        from sgweb.tenancy import signals

        signals.connect()
