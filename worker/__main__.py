"""`python -m worker`: start this host's agent (environment: see worker.config)."""

from __future__ import annotations

import sys

from sgweb.wire.sync import host_token


def main(argv: list[str] | None = None) -> None:
    from worker.app import app, config

    extra = list(sys.argv[1:] if argv is None else argv)
    app.worker_main(
        [
            "worker",
            "--queues",
            config.queue,
            "--pool",
            "solo",
            "--concurrency",
            "1",
            "--hostname",
            # Celery expands %-sequences in node names (%h, %n): an encoded name's % is escaped.
            "agent@" + host_token(config.host).replace("%", "%%"),
            "--loglevel",
            config.log_level,
            # No gossip/mingle/broker heartbeats: agents never talk to each other, and mingle
            # alone adds a second to every start.
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            *extra,
        ]
    )


if __name__ == "__main__":
    main()
