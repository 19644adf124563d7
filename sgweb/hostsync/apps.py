from django.apps import AppConfig


class HostSyncConfig(AppConfig):
    name = "sgweb.hostsync"
    label = "hostsync"
    verbose_name = "Host synchronisation"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Every process of the control plane hands committed firewall changes to this app;
        # whether they reach Redis is the SGWEB_PUBLISH_TO_HOSTS setting, read when publishing.
        from sgweb.hostsync import network_nodes
        from sgweb.hostsync.publish import install

        install()
        network_nodes.install()  # issue 16: routers and firewall groups on network nodes
