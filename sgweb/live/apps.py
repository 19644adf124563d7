from django.apps import AppConfig


class LiveConfig(AppConfig):
    name = "sgweb.live"
    label = "live"
    verbose_name = "Live counters and events"

    def ready(self) -> None:
        # Every control-plane process sends its live events through the Channels layer;
        # whether they go out is the SGWEB_LIVE_EVENTS setting, read when sending.
        from sgweb.live.events import install

        install()
