"""Where a benchmark's Redis bytes go: every command this process sends, tallied by key kind.

Redis's own INFO count (total_net_input_bytes) says how much; this says what for. It wraps
redis-py's command packers (the bytes that go on the wire, RESP framing included) and files
each command under its name and the kind of its first key: ``desired`` for
``P:host:NAME:desired``, ``shared:sg`` for ``P:shared:sg:HASH``, and so on (EVALSHA under
its first key, PUBLISH under ``nudge``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from redis import connection


def _text(value: Any) -> str:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", "replace")
    return str(value)


def key_kind(key: str) -> str:
    """``desired`` for ``P:host:NAME:desired``, ``shared:sg`` for ``P:shared:sg:HASH``."""
    if ":host:" in key:
        return key.rsplit(":", 1)[-1]
    if ":shared:" in key:
        return "shared:" + key.split(":shared:", 1)[1].split(":", 1)[0]
    return "other"


def command_kind(args: tuple[Any, ...]) -> str:
    name = _text(args[0]).split()[0].upper()
    if name == "EVALSHA" and len(args) > 3:
        return f"EVALSHA {key_kind(_text(args[3]))}"
    if len(args) > 1 and name not in {"INFO", "PING", "SCRIPT", "CLIENT", "HELLO", "SELECT"}:
        return f"{name} {key_kind(_text(args[1]))}"
    return name


class Tally:
    def __init__(self) -> None:
        self.bytes: Counter[str] = Counter()
        self.commands: Counter[str] = Counter()

    def note(self, args: tuple[Any, ...], packed: list[bytes]) -> None:
        kind = command_kind(args)
        self.bytes[kind] += sum(len(chunk) for chunk in packed)
        self.commands[kind] += 1

    def reset(self) -> None:
        self.bytes.clear()
        self.commands.clear()

    def report(self) -> dict[str, dict[str, int]]:
        return {
            kind: {"bytes": self.bytes[kind], "commands": self.commands[kind]}
            for kind in sorted(self.bytes, key=lambda k: -self.bytes[k])
        }


@contextmanager
def tallied() -> Iterator[Tally]:
    """Every command packed in this process, while inside, goes into the tally."""
    tally = Tally()
    originals = {}
    for cls in (connection.PythonRespSerializer, connection.HiredisRespSerializer):
        original = cls.pack
        originals[cls] = original

        def pack(self: Any, *args: Any, _original: Any = original) -> Any:
            packed = _original(self, *args)
            tally.note(args, packed)
            return packed

        cls.pack = pack  # type: ignore[method-assign]
    try:
        yield tally
    finally:
        for cls, original in originals.items():
            cls.pack = original  # type: ignore[method-assign]
