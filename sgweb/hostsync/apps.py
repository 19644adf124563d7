from django.apps import AppConfig


class HostSyncConfig(AppConfig):
    name = "sgweb.hostsync"
    label = "hostsync"
    verbose_name = "Host synchronisation"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        import os

        # Every process of the control plane (web, API, workers) publishes committed changes
        # to the host agents; SGWEB_HOSTSYNC_PUBLISH=0 turns that off (e.g. offline tools).
        if os.environ.get("SGWEB_HOSTSYNC_PUBLISH", "1") != "0":
            from sgweb.hostsync.publish import install

            install()
