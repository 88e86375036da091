"""Start, watch and stop the cluster's processes; free loopback ports; readiness polling."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Final

_PR_SET_PDEATHSIG: Final = 1


class ClusterError(RuntimeError):
    """A cluster process failed to start or become ready; the message quotes its log."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    # If the test process dies (even by SIGKILL), the kernel kills this child too. SIGKILL, not
    # SIGTERM: a kube-apiserver whose etcd is gone can spend a minute in graceful shutdown.
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def start(
    argv: Sequence[str],
    log: Path,
    *,
    tie_to_parent: bool,
    env: Mapping[str, str] | None = None,
) -> int:
    """Start ``argv`` in its own process group with stdout and stderr to ``log``; return its pid.

    With ``tie_to_parent`` the process is killed when the calling process dies (test fixtures);
    without it, it outlives the caller (``steward dev-cluster up``).
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        process = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent if tie_to_parent else None,  # noqa: PLW1509
            env={**os.environ, **(env or {})},
        )
    return process.pid


def alive(pid: int) -> bool:
    """Whether a process with this pid exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError):
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    return True


def stop(pid: int, timeout: float = 10.0) -> None:
    """SIGTERM the process group of ``pid``, then SIGKILL it if it has not exited in time."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, sig)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            _reap(pid)
            if not alive(pid):
                return
            time.sleep(0.05)


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def log_tail(log: Path, lines: int = 20) -> str:
    """The last lines of a log file, for error messages."""
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def wait_until(
    ready: Callable[[], bool], *, what: str, pid: int, log: Path, timeout: float = 60.0
) -> None:
    """Poll ``ready`` until it is true; raise :class:`ClusterError` if the process dies first
    or ``timeout`` seconds pass, quoting the end of its log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            return
        _reap(pid)
        if not alive(pid):
            raise ClusterError(f"{what} exited during start-up; end of {log}:\n{log_tail(log)}")
        time.sleep(0.2)
    raise ClusterError(f"{what} not ready after {timeout:.0f}s; end of {log}:\n{log_tail(log)}")


def http_ok(url: str, *, token: str | None = None, ca_file: Path | None = None) -> bool:
    """Whether GET ``url`` answers 200. HTTPS verifies against ``ca_file`` when given; the
    components' own self-signed health endpoints on loopback are read unverified."""
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    context = None
    if url.startswith("https"):
        if ca_file is not None:
            if not ca_file.is_file():  # the apiserver writes its certificate as it starts
                return False
            context = ssl.create_default_context(cafile=str(ca_file))
        else:
            context = ssl._create_unverified_context()
    try:
        with urllib.request.urlopen(request, timeout=2, context=context) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False
