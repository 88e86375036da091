"""Cluster processes: started detached or tied to their parent, and stopped for good."""

import subprocess
import sys
import textwrap
import time
from pathlib import Path

from steward.devcluster.processes import alive, free_port, http_ok, start, stop


def test_stop_ends_a_process_that_ignores_sigterm(tmp_path: Path) -> None:
    script = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"
    pid = start([sys.executable, "-c", script], tmp_path / "log", tie_to_parent=False)
    time.sleep(0.3)
    assert alive(pid)
    stop(pid, timeout=0.5)
    assert not alive(pid)


def test_tied_processes_die_when_their_parent_is_killed(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    parent = textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from steward.devcluster.processes import start
        pid = start([sys.executable, "-c", "import time; time.sleep(60)"],
                    Path({str(tmp_path / "child.log")!r}), tie_to_parent=True)
        Path({str(pid_file)!r}).write_text(str(pid))
        time.sleep(60)
    """)
    process = subprocess.Popen([sys.executable, "-c", parent])
    deadline = time.monotonic() + 20
    while not pid_file.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    child = int(pid_file.read_text())
    assert alive(child)
    process.kill()  # SIGKILL: no cleanup code of the parent runs
    process.wait()
    deadline = time.monotonic() + 5
    while alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(child)


def test_free_ports_are_free_and_health_checks_fail_closed() -> None:
    port = free_port()
    assert 1024 < port < 65536
    assert not http_ok(f"http://127.0.0.1:{port}/healthz")
    assert not http_ok(f"https://127.0.0.1:{port}/readyz", ca_file=Path("/nonexistent.crt"))
