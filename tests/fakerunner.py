"""A `CommandRunner` for unit tests: records every command and answers from a script.

The e2e tiers never use it: they run the real kernel (`sgweb.kernel.runner.SubprocessRunner`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from sgweb.kernel.runner import CommandError, CommandResult


@dataclass
class RecordedCall:
    argv: tuple[str, ...]
    input: str | None
    netns: str | None


ScriptedResponse = CommandResult | Callable[[RecordedCall], CommandResult]


@dataclass
class FakeProcess:
    argv: tuple[str, ...]
    netns: str | None
    result: CommandResult
    stopped: bool = False

    def poll(self) -> int | None:
        return self.result.returncode if self.stopped else None

    def read_output(self) -> tuple[str, str]:
        return self.result.stdout, self.result.stderr

    def wait_for_output(self, text: str, timeout: float = 5.0) -> str:
        if text not in self.result.stdout and text not in self.result.stderr:
            raise TimeoutError(f"{' '.join(self.argv)} did not print {text!r}")
        return self.result.stdout

    def stop(self, timeout: float = 5.0) -> CommandResult:
        self.stopped = True
        return self.result


@dataclass
class FakeRunner:
    """Records every command; answers from a script of (argv prefix -> response) rules.

    `on(("iptables-restore",), returncode=1, stderr="...")` makes every later iptables-restore
    fail. Unmatched commands succeed with empty output, so tests script only what they care about.
    """

    calls: list[RecordedCall] = field(default_factory=list)
    spawned: list[FakeProcess] = field(default_factory=list)
    _script: list[tuple[tuple[str, ...], str | None, ScriptedResponse]] = field(
        default_factory=list
    )
    released: list[str] = field(default_factory=list)

    def on(
        self,
        argv_prefix: Sequence[str],
        *,
        returncode: int = 0,
        stdout: str = "",
        stderr: str = "",
        netns: str | None = None,
        respond: Callable[[RecordedCall], CommandResult] | None = None,
    ) -> None:
        response: ScriptedResponse = respond or CommandResult(
            tuple(argv_prefix), returncode, stdout, stderr, 0.0, netns
        )
        # Newest first, so a test can override an earlier, broader rule.
        self._script.insert(0, (tuple(argv_prefix), netns, response))

    def _respond(self, call: RecordedCall) -> CommandResult:
        for prefix, netns, response in self._script:
            if call.argv[: len(prefix)] == prefix and (netns is None or netns == call.netns):
                if callable(response):
                    return response(call)
                return CommandResult(
                    call.argv,
                    response.returncode,
                    response.stdout,
                    response.stderr,
                    0.0,
                    call.netns,
                )
        return CommandResult(call.argv, 0, "", "", 0.0, call.netns)

    def run(
        self,
        argv: Sequence[str],
        *,
        input: str | None = None,
        netns: str | None = None,
        check: bool = True,
        timeout: float = 30,
    ) -> CommandResult:
        call = RecordedCall(tuple(argv), input, netns)
        self.calls.append(call)
        result = self._respond(call)
        if check and result.returncode != 0:
            raise CommandError(result)
        return result

    def spawn(
        self, argv: Sequence[str], *, netns: str | None = None, stream_stdout: bool = False
    ) -> FakeProcess:
        call = RecordedCall(tuple(argv), None, netns)
        self.calls.append(call)
        process = FakeProcess(tuple(argv), netns, self._respond(call))
        self.spawned.append(process)
        return process

    def release_netns(self, netns: str) -> None:
        self.released.append(netns)

    def commands(self) -> list[tuple[str, ...]]:
        return [call.argv for call in self.calls]
