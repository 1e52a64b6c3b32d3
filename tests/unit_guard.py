"""Every test is a unit test or is marked `slow`, and a unit test is held to it.

`make test-unit` runs the tests not marked slow and promises they need nothing but the
virtualenv: no root, no network, no cluster, none of the tools `make tools` installs. So that a
test cannot break that promise unnoticed where those tools happen to be installed (`make test`,
CI), this plugin watches every unit test, in every run, through Python's audit hooks: starting
one of the tools below, or connecting anywhere but loopback, fails the test (after the phase
that did it) with one line that says to mark it `slow`. A tool started by a script the test
runs is not seen here; running `make test-unit` as a plain user in a network namespace of its
own is the check for that (docs/testing.md).
"""

from __future__ import annotations

import ipaddress
import os
import shlex
import sys
from collections.abc import Generator
from typing import Any

import pytest

TOOLS = frozenset(
    {
        "haproxy", "redis-server", "redis-cli", "fortio", "wrk", "chromium", "chromium-browser",
        "prometheus", "docker", "helm", "kubectl", "checkov", "go", "kind", "minikube",
    }
)
LOCAL_NAMES = frozenset({"", "localhost", "ip6-localhost"})

# The unit test now running in this process (None: a slow test, or between tests), and what it
# tried that a unit test may not.
_current: str | None = None
_violations: list[str] = []


def _words(command: Any) -> list[str]:
    try:
        if isinstance(command, str | bytes):
            return shlex.split(os.fsdecode(command))
        return [os.fsdecode(word) for word in command or []]
    except (ValueError, TypeError):
        return []


def _program(args: Any) -> str:
    """The program a Popen/exec runs: argv[0], or the first word of `sh -c COMMAND`."""
    argv = _words(args)
    if len(argv) >= 3 and os.path.basename(argv[0]) in {"sh", "bash"} and argv[1] == "-c":
        argv = _words(argv[2])
    return os.path.basename(argv[0]) if argv else ""


def _local(host: Any) -> bool:
    if host is None or (isinstance(host, str | bytes) and os.fsdecode(host) in LOCAL_NAMES):
        return True
    try:
        return ipaddress.ip_address(os.fsdecode(host).split("%")[0]).is_loopback
    except ValueError:
        return False  # a name other than localhost: a lookup that may leave the machine


def _refusal(event: str, args: tuple[Any, ...]) -> str | None:
    if event == "subprocess.Popen":
        program = _program(args[1] if args[1] else [args[0]])
    elif event in ("os.exec", "os.posix_spawn"):
        program = _program(args[1])
    elif event == "os.system":
        program = _program(["sh", "-c", args[0]])
    elif event == "socket.connect":
        address = args[1]
        if isinstance(address, str | bytes):  # AF_UNIX
            path = os.fsdecode(address)
            return f"connects to {path}" if "docker" in path or "containerd" in path else None
        return None if _local(address[0]) else f"connects to {address[0]}"
    elif event == "socket.getaddrinfo":
        return None if _local(args[0]) else f"looks up {os.fsdecode(args[0])}"
    else:
        return None
    return f"starts {program}" if program in TOOLS else None


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if _current is None or not event.startswith(("subprocess.", "os.", "socket.")):
        return
    refusal = _refusal(event, args)
    if refusal:
        message = (
            f"{_current} {refusal}: a unit test needs no tools, network or cluster; "
            "mark it @pytest.mark.slow"
        )
        # Recorded, not raised: an exception here would land in whichever thread made the call
        # (a server's, a gRPC worker's) and could hang the test instead of failing it.
        _violations.append(message)


def pytest_configure(config: pytest.Config) -> None:
    sys.addaudithook(_audit)  # for the life of the process; idle while no unit test runs


def _guarded(item: pytest.Item) -> Generator[None, Any, Any]:
    global _current
    _current = None if item.get_closest_marker("slow") else item.nodeid
    _violations.clear()
    try:
        result = yield
    finally:
        _current = None
    if _violations:
        pytest.fail(_violations[0], pytrace=False)
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, Any, Any]:
    return (yield from _guarded(item))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, Any, Any]:
    return (yield from _guarded(item))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Generator[None, Any, Any]:
    return (yield from _guarded(item))
