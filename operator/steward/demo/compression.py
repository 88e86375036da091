"""The compression part of the demo: the service's model, and the runner run in-process.

kwok simulates the runner Job's pod (it has no container runtime), so the demo runs the real
runner as a local process (``python -m steward.cli compress``) with the very arguments of the
pod's container, and hands what it writes to its termination-message file to kwok, which
reports it in the pod's status as a kubelet would (the dev cluster's ``pod-complete`` Stage).

The model is a two-hidden-layer MLP trained here on scikit-learn's digits (offline data), and
its evaluation set the held-out third. Needs the ``compress`` extra (torch) and scikit-learn;
:func:`unavailable` says why not when they are missing.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from typing import Any, Final

MESSAGE_ANNOTATION: Final = "steward.ai/termination-message"
RESULT_FLAG: Final = "--result-file"


def unavailable() -> str | None:
    """Why the runner cannot run in this environment, or None when it can."""
    missing = [m for m in ("torch", "sklearn") if importlib.util.find_spec(m) is None]
    if missing:
        return f"{' and '.join(missing)} not installed (pip install 'ai-steward[compress]')"
    return None


def prepare_model(folder: Path) -> None:
    """Train the service's model and save it (``model.pt``) with its evaluation set
    (``eval.pt``), as a user would hand them to Steward."""
    import torch  # noqa: PLC0415 - the compress extra, only when the demo compresses
    from sklearn.datasets import load_digits  # noqa: PLC0415
    from torch import nn  # noqa: PLC0415

    folder.mkdir(parents=True, exist_ok=True)
    loaded = load_digits()
    x = torch.tensor(loaded.data, dtype=torch.float32)
    x = (x - x.mean(0)) / (x.std(0) + 1e-6)
    y = torch.tensor(loaded.target)
    test = torch.arange(len(y)) % 3 == 0
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(64, 1024), nn.ReLU(), nn.Linear(1024, 1024), nn.ReLU(), nn.Linear(1024, 10)
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(0)
    for _ in range(15):
        for batch in torch.randperm(int((~test).sum()), generator=generator).split(64):  # type: ignore[no-untyped-call]
            loss = nn.functional.cross_entropy(model(x[~test][batch]), y[~test][batch])
            optimizer.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]
            optimizer.step()
    torch.save(model.eval(), folder / "model.pt")
    torch.save({"inputs": x[test], "labels": y[test]}, folder / "eval.pt")


def run_runner(pod: dict[str, Any], scratch: Path, timeout: float = 600) -> str:
    """Run ``steward compress`` with the pod's container arguments as a local process; return
    what it wrote to its termination-message file. Its output goes to ``scratch/runner.log``.

    Raises:
        RunnerError: the runner failed or wrote no result.
    """
    args = list(pod["spec"]["containers"][0]["args"])
    result = scratch / "termination-message"
    args[args.index(RESULT_FLAG) + 1] = str(result)
    scratch.mkdir(parents=True, exist_ok=True)
    log = scratch / "runner.log"
    with log.open("w", encoding="utf-8") as output:
        finished = subprocess.run(  # our own CLI, the args of our own manifest
            [sys.executable, "-m", "steward.cli", *args],
            stdout=output,
            stderr=output,
            stdin=subprocess.DEVNULL,
            timeout=timeout,
            check=False,
        )
    if finished.returncode != 0 or not result.is_file():
        raise RunnerError(f"the compression runner failed (exit {finished.returncode}); see {log}")
    return result.read_text(encoding="utf-8")


class RunnerError(RuntimeError):
    """The compression runner did not produce a result."""
