from django.apps import AppConfig


class LiveConfig(AppConfig):
    name = "sgweb.live"
    label = "live"
    verbose_name = "Live counters and events"

    def ready(self) -> None:
        import os
        import sys

        # Every control-plane process sends its live events (applies, drift, traces) to the
        # Channels layer. Test processes do not unless a test asks (`events.install()`), so that
        # they never write into the real Redis; SGWEB_LIVE_EVENTS=1/0 overrides both ways.
        wanted = os.environ.get("SGWEB_LIVE_EVENTS")
        if wanted == "1" or (wanted is None and "pytest" not in sys.modules):
            from sgweb.live.events import install

            install()
