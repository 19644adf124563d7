"""The one place in sgweb that starts processes.

Everything that touches the kernel (iptables-restore, ipset, ip, conntrack, ping, ...) goes through
a `CommandRunner`, so unit tests can pass a fake (`tests/fakerunner.py`) and see exactly which
commands would run.

Commands inside a network namespace are started from a worker thread that has `setns()`ed into
that namespace: the child inherits the thread's namespace, which saves the extra `ip netns exec` /
`nsenter` process (about 1.1 ms per command instead of 1.9-2.3 ms, measured here). Namespaces are
per task on Linux, so only that thread moves; the rest of the process stays in the root namespace.
"""

from __future__ import annotations

import concurrent.futures
import ctypes
import os
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import IO, Literal, Protocol

NETNS_DIR = "/run/netns"
CLONE_NEWNET = 0x40000000
NETNS_WORKERS = 4

NetnsStrategy = Literal["setns", "nsenter", "ip-netns-exec"]


@dataclass(frozen=True, slots=True)
class CommandResult:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    duration_s: float
    netns: str | None = None


class CommandError(RuntimeError):
    """A command failed (non-zero exit, timeout, or could not start)."""

    def __init__(self, result: CommandResult, message: str | None = None) -> None:
        self.result = result
        self.returncode = result.returncode
        self.stderr = result.stderr
        self.stdout = result.stdout
        where = f" in netns {result.netns}" if result.netns else ""
        detail = message or (result.stderr.strip() or result.stdout.strip() or "no output")
        super().__init__(f"{' '.join(result.argv)}{where} exited {result.returncode}: {detail}")


class CommandTimeout(CommandError):
    pass


class ProcessHandle(Protocol):
    argv: tuple[str, ...]
    netns: str | None

    def poll(self) -> int | None: ...

    def read_output(self) -> tuple[str, str]: ...

    def wait_for_output(self, text: str, timeout: float = 5.0) -> str: ...

    def stop(self, timeout: float = 5.0) -> CommandResult: ...


class CommandRunner(Protocol):
    def run(
        self,
        argv: Sequence[str],
        *,
        input: str | None = None,
        netns: str | None = None,
        check: bool = True,
        timeout: float = 30,
    ) -> CommandResult: ...

    def spawn(
        self, argv: Sequence[str], *, netns: str | None = None, stream_stdout: bool = False
    ) -> ProcessHandle: ...

    def release_netns(self, netns: str) -> None: ...


def _setns(path: str) -> tuple[int, int]:
    """Move the calling thread into the network namespace at `path`; return its identity."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, f"setns({path}): {os.strerror(errno)}")
        stat = os.fstat(fd)
        return stat.st_dev, stat.st_ino
    finally:
        os.close(fd)


def _enter_expected(path: str, identity: tuple[int, int]) -> None:
    entered = _setns(path)
    if entered != identity:
        # Replaced between our stat and this thread's start: refuse rather than run elsewhere.
        raise OSError(f"network namespace {path} changed while entering it")


@dataclass
class _NetnsThread:
    executor: concurrent.futures.ThreadPoolExecutor
    identity: tuple[int, int]


class SpawnedProcess:
    """A long-running process (tcpdump, xtables-monitor, a listener); `stop()` collects output.

    Output goes to temporary files unless `stream_stdout` was asked for, so a chatty process can
    never block on a full pipe while nobody reads it.
    """

    def __init__(
        self,
        argv: tuple[str, ...],
        netns: str | None,
        popen: subprocess.Popen[str],
        stdout_file: IO[str] | None,
        stderr_file: IO[str],
    ) -> None:
        self.argv = argv
        self.netns = netns
        self.popen = popen
        self.pid = popen.pid
        self._stdout_file = stdout_file
        self._stderr_file = stderr_file
        self._started = time.perf_counter()
        self._result: CommandResult | None = None

    @property
    def stdout(self) -> IO[str] | None:
        """The live stdout pipe when spawned with `stream_stdout=True`."""
        return self.popen.stdout

    def poll(self) -> int | None:
        return self.popen.poll()

    def read_output(self) -> tuple[str, str]:
        """What the process has written so far (file-captured output only)."""
        return _read_all(self._stdout_file), _read_all(self._stderr_file)

    def wait_for_output(self, text: str, timeout: float = 5.0) -> str:
        """Block until the captured stdout or stderr contains `text`; return stdout so far."""
        deadline = time.monotonic() + timeout
        while True:
            stdout, stderr = self.read_output()
            if text in stdout or text in stderr:
                return stdout
            if self.popen.poll() is not None or time.monotonic() > deadline:
                raise TimeoutError(f"{' '.join(self.argv)} did not print {text!r}: {stderr!r}")
            time.sleep(0.01)

    def stop(self, timeout: float = 5.0) -> CommandResult:
        if self._result is not None:
            return self._result
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        streamed = ""
        if self.popen.stdout is not None:
            streamed = self.popen.stdout.read()
            self.popen.stdout.close()
        stdout, stderr = self.read_output()
        for handle in (self._stdout_file, self._stderr_file):
            if handle is not None:
                handle.close()
        self._result = CommandResult(
            argv=self.argv,
            returncode=self.popen.returncode,
            stdout=streamed or stdout,
            stderr=stderr,
            duration_s=time.perf_counter() - self._started,
            netns=self.netns,
        )
        return self._result

    def __enter__(self) -> SpawnedProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _read_all(handle: IO[str] | None) -> str:
    if handle is None:
        return ""
    handle.flush()
    with open(handle.name, encoding="utf-8", errors="replace") as reader:
        return reader.read()


class SubprocessRunner:
    """Runs real commands, optionally inside a named network namespace."""

    def __init__(self, strategy: NetnsStrategy = "setns") -> None:
        self.strategy = strategy
        self._threads: dict[str, _NetnsThread] = {}
        self._lock = threading.Lock()

    # -- namespace plumbing -------------------------------------------------------------------

    def _netns_executor(self, netns: str) -> concurrent.futures.ThreadPoolExecutor:
        path = os.path.join(NETNS_DIR, netns)
        try:
            stat = os.stat(path)
        except FileNotFoundError:
            self.release_netns(netns)
            raise
        identity = (stat.st_dev, stat.st_ino)
        with self._lock:
            current = self._threads.get(netns)
            # A namespace deleted and recreated under the same name is a different namespace.
            if current is not None and current.identity == identity:
                return current.executor
            if current is not None:
                current.executor.shutdown(wait=False)
            # Several workers, so a long apply does not hold up a counter read in the same
            # namespace; each enters the namespace once, when the pool starts it.
            executor = concurrent.futures.ThreadPoolExecutor(
                max_workers=NETNS_WORKERS,
                thread_name_prefix=f"netns-{netns}",
                initializer=_enter_expected,
                initargs=(path, identity),
            )
            self._threads[netns] = _NetnsThread(executor, identity)
            return executor

    def release_netns(self, netns: str) -> None:
        """Let go of a namespace; a thread parked in it would otherwise keep it alive."""
        with self._lock:
            current = self._threads.pop(netns, None)
        if current is not None:
            current.executor.shutdown(wait=True)

    def close(self) -> None:
        for netns in list(self._threads):
            self.release_netns(netns)

    def _prefix(self, netns: str | None) -> tuple[str, ...]:
        if netns is None or self.strategy == "setns":
            return ()
        if self.strategy == "nsenter":
            return ("nsenter", f"--net={os.path.join(NETNS_DIR, netns)}", "--")
        return ("ip", "netns", "exec", netns)

    def _in_netns(self, netns: str | None, call: Callable[[], object]) -> object:
        if netns is None or self.strategy != "setns":
            return call()
        try:
            return self._netns_executor(netns).submit(call).result()
        except concurrent.futures.BrokenExecutor:
            # A worker could not enter the namespace (it was being replaced): start over once.
            self.release_netns(netns)
            return self._netns_executor(netns).submit(call).result()

    # -- running ------------------------------------------------------------------------------

    def run(
        self,
        argv: Sequence[str],
        *,
        input: str | None = None,
        netns: str | None = None,
        check: bool = True,
        timeout: float = 30,
    ) -> CommandResult:
        argv = tuple(argv)
        full_argv = self._prefix(netns) + argv
        started = time.perf_counter()

        def call() -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                full_argv,
                input=input,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )

        try:
            completed = self._in_netns(netns, call)
        except subprocess.TimeoutExpired as exc:
            result = CommandResult(
                argv, -1, _text(exc.stdout), _text(exc.stderr), time.perf_counter() - started, netns
            )
            raise CommandTimeout(result, f"timed out after {timeout} s") from exc
        except OSError as exc:
            result = CommandResult(argv, -1, "", str(exc), time.perf_counter() - started, netns)
            raise CommandError(result, str(exc)) from exc
        assert isinstance(completed, subprocess.CompletedProcess)
        result = CommandResult(
            argv=argv,
            returncode=completed.returncode,
            stdout=completed.stdout,
            stderr=completed.stderr,
            duration_s=time.perf_counter() - started,
            netns=netns,
        )
        if check and result.returncode != 0:
            raise CommandError(result)
        return result

    def spawn(
        self, argv: Sequence[str], *, netns: str | None = None, stream_stdout: bool = False
    ) -> SpawnedProcess:
        argv = tuple(argv)
        full_argv = self._prefix(netns) + argv
        stdout_file = (
            None
            if stream_stdout
            else tempfile.NamedTemporaryFile("w+", prefix="sgweb-spawn-", suffix=".out")  # noqa: SIM115
        )
        # Closed by SpawnedProcess.stop(), which outlives this call.
        stderr_file = tempfile.NamedTemporaryFile("w+", prefix="sgweb-spawn-", suffix=".err")  # noqa: SIM115

        def call() -> subprocess.Popen[str]:
            return subprocess.Popen(
                full_argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE if stream_stdout else stdout_file,
                stderr=stderr_file,
                text=True,
                bufsize=1,
            )

        popen = self._in_netns(netns, call)
        assert isinstance(popen, subprocess.Popen)
        return SpawnedProcess(argv, netns, popen, stdout_file, stderr_file)


def _text(value: str | bytes | None) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return value


# -- the fake, for unit tests --------------------------------------------------------------------


_default_runner: SubprocessRunner | None = None


def default_runner() -> SubprocessRunner:
    """A process-wide real runner, so namespace threads are shared rather than multiplied."""
    global _default_runner
    if _default_runner is None:
        _default_runner = SubprocessRunner()
    return _default_runner
