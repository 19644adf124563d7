from django.apps import AppConfig


class HostSyncConfig(AppConfig):
    name = "sgweb.hostsync"
    label = "hostsync"
    verbose_name = "Host synchronisation"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        import os
        import sys

        # Every process of the control plane (web, API, workers, management commands) publishes
        # committed changes to the host agents. Test processes do not, unless a test asks
        # (`sgweb.hostsync.publish.install()`), so that test hosts never land in the real Redis
        # key space. SGWEB_HOSTSYNC_PUBLISH=1/0 overrides both ways.
        wanted = os.environ.get("SGWEB_HOSTSYNC_PUBLISH")
        if wanted == "1" or (wanted is None and "pytest" not in sys.modules):
            from sgweb.hostsync.publish import install

            install()
