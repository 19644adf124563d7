"""Traffic between endpoints of a topology, one packet at a time (see `sgweb.kernel.probe`).

A mixin for `Topology`: it only needs `runner` and `ns(label)`.
"""

from __future__ import annotations

import sys
import time

from sgweb.kernel import probe as _probe_module
from sgweb.kernel.runner import CommandError, CommandRunner, ProcessHandle

PROBE_SCRIPT = _probe_module.__file__


class EndpointTraffic:
    runner: CommandRunner

    def ns(self, label: str) -> str:
        raise NotImplementedError

    def probe(self, label: str, *args: str, timeout: float = 0.5) -> bool:
        """Run one probe from an endpoint; True when the traffic got through."""
        argv = [sys.executable, "-I", PROBE_SCRIPT, *args, "--timeout", str(timeout)]
        result = self.runner.run(argv, netns=self.ns(label), check=False, timeout=timeout + 10)
        if result.returncode not in (0, 1):
            raise CommandError(result)
        return result.returncode == 0

    def ping(self, label: str, dst: str, *, src: str | None = None, timeout: float = 0.5) -> bool:
        return self.probe(label, "icmp", dst, *(["--src", src] if src else []), timeout=timeout)

    def tcp_connect(
        self, label: str, dst: str, port: int, *, src: str | None = None, timeout: float = 0.5
    ) -> bool:
        extra = ["--src", src] if src else []
        return self.probe(label, "tcp", dst, "--port", str(port), *extra, timeout=timeout)

    def udp_send(
        self,
        label: str,
        dst: str,
        port: int,
        *,
        sport: int = 0,
        src: str | None = None,
        expect_reply: bool = False,
        timeout: float = 0.5,
    ) -> bool:
        extra = ["--src", src] if src else []
        if expect_reply:
            extra.append("--expect-reply")
        return self.probe(
            label, "udp", dst, "--port", str(port), "--sport", str(sport), *extra, timeout=timeout
        )

    def listen(self, label: str, protocol: str, port: int, *, echo: bool = False) -> ProcessHandle:
        """Start a TCP/UDP listener; its stdout gets one JSON line per arrival."""
        argv = [sys.executable, "-I", PROBE_SCRIPT, "listen", protocol, "--port", str(port)]
        if echo:
            argv.append("--echo")
        handle = self.runner.spawn(argv, netns=self.ns(label))
        _wait_for_listener(self.runner, self.ns(label), protocol, port)
        return handle

    def stream(self, label: str, dst: str, port: int, *, interval: float = 0.1) -> ProcessHandle:
        """A long-lived TCP connection exchanging a byte every `interval` (JSON line per try)."""
        argv = [sys.executable, "-I", PROBE_SCRIPT, "stream", dst, "--port", str(port),
                "--interval", str(interval)]  # fmt: skip
        return self.runner.spawn(argv, netns=self.ns(label))


def _wait_for_listener(runner: CommandRunner, netns: str, protocol: str, port: int) -> None:
    flag = "-tln" if protocol == "tcp" else "-uln"
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        listing = runner.run(["ss", "-H", flag, f"sport = :{port}"], netns=netns, check=False)
        if listing.stdout.strip():
            return
        time.sleep(0.02)
    raise TimeoutError(f"no {protocol} listener on port {port} in {netns}")
