from __future__ import annotations

import os

import pytest

from sgweb.kernel.runner import CommandError, CommandTimeout, SubprocessRunner
from sgweb.kernel.topology import list_namespaces

pytestmark = pytest.mark.kernel


def _root_netns_inode() -> int:
    return os.stat("/proc/self/ns/net").st_ino


@pytest.mark.parametrize("strategy", ["setns", "nsenter", "ip-netns-exec"])
def test_commands_run_inside_the_named_namespace_whatever_the_strategy(
    scratch_netns: str, strategy: str
) -> None:
    runner = SubprocessRunner(strategy)  # type: ignore[arg-type]
    try:
        inside = runner.run(["readlink", "/proc/self/ns/net"], netns=scratch_netns).stdout
        outside = runner.run(["readlink", "/proc/self/ns/net"]).stdout
    finally:
        runner.close()
    assert inside != outside
    assert str(_root_netns_inode()) in outside


def test_the_calling_process_stays_in_the_root_namespace(
    kernel_runner: SubprocessRunner, scratch_netns: str
) -> None:
    before = _root_netns_inode()
    kernel_runner.run(["true"], netns=scratch_netns)
    assert _root_netns_inode() == before


def test_a_failing_command_raises_with_its_stderr(
    kernel_runner: SubprocessRunner, scratch_netns: str
) -> None:
    with pytest.raises(CommandError) as failure:
        kernel_runner.run(["ip", "link", "show", "no-such-device"], netns=scratch_netns)
    assert "no-such-device" in failure.value.stderr
    assert failure.value.result.netns == scratch_netns


def test_check_false_returns_the_failure_instead_of_raising(
    kernel_runner: SubprocessRunner, scratch_netns: str
) -> None:
    result = kernel_runner.run(["sh", "-c", "echo out; exit 3"], netns=scratch_netns, check=False)
    assert (result.returncode, result.stdout) == (3, "out\n")


def test_a_command_that_runs_too_long_times_out(
    kernel_runner: SubprocessRunner, scratch_netns: str
) -> None:
    with pytest.raises(CommandTimeout):
        kernel_runner.run(["sleep", "5"], netns=scratch_netns, timeout=0.2)


def test_stdin_reaches_the_command(kernel_runner: SubprocessRunner, scratch_netns: str) -> None:
    assert kernel_runner.run(["cat"], input="hello\n", netns=scratch_netns).stdout == "hello\n"


def test_a_spawned_process_runs_in_the_namespace_until_stopped(
    kernel_runner: SubprocessRunner, scratch_netns: str
) -> None:
    handle = kernel_runner.spawn(
        ["sh", "-c", "readlink /proc/self/ns/net; exec sleep 30"], netns=scratch_netns
    )
    handle.wait_for_output("net:[")
    assert handle.poll() is None
    result = handle.stop()
    assert result.returncode != 0  # terminated
    assert str(_root_netns_inode()) not in result.stdout
    assert result.stdout.startswith("net:[")


def test_a_namespace_recreated_under_the_same_name_is_entered_afresh(
    kernel_runner: SubprocessRunner, netns_prefix: str
) -> None:
    name = netns_prefix + "again"
    kernel_runner.run(["ip", "netns", "add", name])
    first = kernel_runner.run(["readlink", "/proc/self/ns/net"], netns=name).stdout
    kernel_runner.run(["ip", "netns", "del", name])
    kernel_runner.run(["ip", "netns", "add", name])
    second = kernel_runner.run(["readlink", "/proc/self/ns/net"], netns=name).stdout
    assert first != second
    kernel_runner.release_netns(name)
    kernel_runner.run(["ip", "netns", "del", name])
    assert name not in list_namespaces(netns_prefix)


def test_a_long_command_does_not_hold_up_another_in_the_same_namespace(
    kernel_runner: SubprocessRunner, scratch_netns: str
) -> None:
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        slow = pool.submit(kernel_runner.run, ["sleep", "2"], netns=scratch_netns)
        quick = kernel_runner.run(["readlink", "/proc/self/ns/net"], netns=scratch_netns)
        finished_first = not slow.done()
        slow.result()
    assert quick.returncode == 0
    assert finished_first
