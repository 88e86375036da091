"""`steward demo`, the main job, run as a newcomer runs it: a real process, non-interactive (not
a terminal, so plain lines), with a time limit. It brings up its own cluster, so these tests run
first, before the session's shared cluster starts.

What must hold: every step of the story is shown by the cluster (the demo exits non-zero
otherwise, naming what was missing); its final numbers are the accounting code's and agree with
the operator's running accounts (each workload's status and the Budget's spent) to the cent; it
saved money versus on-demand; and it leaves nothing running, Ctrl-C included.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from steward.devcluster import cluster, processes
from tests.integration.conftest import require_cluster_build

pytestmark = pytest.mark.before_cluster
#: The scenario takes about 5 minutes on 2 cores; the demo gives up at its own time limit.
SCENARIO_LIMIT_SECONDS = 600
PROCESS_TIMEOUT_SECONDS = SCENARIO_LIMIT_SECONDS + 300


def _demo(workdir: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "steward.cli", "demo", "--workdir", str(workdir), *args],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True,
        env={**os.environ, "COLUMNS": "200"}, start_new_session=True,
    )  # fmt: skip


def _left_running(workdir: Path, pids: dict[str, int]) -> list[str]:
    return [name for name, pid in pids.items() if processes.alive(pid)] + (
        ["state.json"] if (workdir / "state.json").exists() else []
    )


def test_ctrl_c_stops_the_demo_and_cleans_up(tmp_path: Path) -> None:
    require_cluster_build()
    workdir = tmp_path / "demo"
    demo = _demo(workdir, "--no-compression")
    assert demo.stdout is not None
    lines = []
    for line in demo.stdout:
        lines.append(line)
        if line.startswith("submitted:"):
            break
    assert lines, "the demo printed nothing"
    assert lines[-1].startswith("submitted:"), "".join(lines)
    state = cluster.load(workdir)
    assert state is not None
    assert all(processes.alive(pid) for pid in state.pids.values())
    time.sleep(3)
    demo.send_signal(signal.SIGINT)  # the demo alone: it must stop its cluster itself
    output, _ = demo.communicate(timeout=120)
    assert demo.returncode == 130, output
    assert "interrupted: cleaning up" in output
    assert "the cluster is stopped" in output
    assert _left_running(workdir, state.pids) == []


def test_the_demo_runs_its_story_and_its_numbers_are_the_accounting_s(tmp_path: Path) -> None:
    require_cluster_build()
    workdir, summary_file = tmp_path / "demo", tmp_path / "summary.json"
    demo = _demo(workdir, "--summary", str(summary_file), "--time-limit",
                 str(SCENARIO_LIMIT_SECONDS))  # fmt: skip
    try:
        output, _ = demo.communicate(timeout=PROCESS_TIMEOUT_SECONDS)
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGINT)
            demo.communicate(timeout=120)
    print(output)
    assert demo.returncode == 0, output[-4000:]
    summary: dict[str, Any] = json.loads(summary_file.read_text())
    assert summary["missed"] == []
    # Prices are scaled, and the screen says so.
    assert summary["price_scale"] == 60
    assert "prices x60: a minute here costs what an hour would" in output
    # The running accounts agree with one accounting of the whole demo.
    assert summary["largest_difference_usd"] <= 0.01
    assert summary["budget_spent_usd"] == pytest.approx(summary["usd"], abs=0.01)
    by_name = {w["name"]: w for w in summary["workloads"]}
    for name in ("llm-finetune", "nightly-eval", "embed"):
        line = by_name[name]
        assert line["usd"] > 0
        assert line["status_usd"] == pytest.approx(line["usd"], abs=0.01)
    # Spot work cost less than the same work on on-demand; the service never ran on spot.
    finetune = by_name["llm-finetune"]
    assert finetune["spot_usd"] > 0
    assert finetune["usd_if_on_demand"] > finetune["usd"]
    assert by_name["embed"]["usd_if_on_demand"] == pytest.approx(by_name["embed"]["usd"])
    assert summary["saved_usd"] == pytest.approx(summary["usd_if_on_demand"] - summary["usd"])
    assert summary["saved_usd"] > 0
    assert summary["kwh"] > 0
    # The story, as printed from the cluster's own Events.
    for shown in ("Preempted", "Resumed", "ScaleUp", "ScaleDown", "ThresholdReached",
                  "Suspended", "Blocked", "GatePassed", "Promoted", "Succeeded"):  # fmt: skip
        assert f" {shown}: " in output, shown
    assert "cleaned up" in output
    assert not (workdir / "state.json").exists()
