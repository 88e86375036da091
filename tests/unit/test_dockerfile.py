"""The Dockerfile's promises, read from the file (no Docker engine runs here): pinned base
image, a non-root operator image without torch, a separate compression-runner target that can
compile models, and a build context without caches, virtualenvs or tests."""

from __future__ import annotations

import re
from pathlib import Path


def _stages(repo: Path) -> dict[str, str]:
    lines = (repo / "Dockerfile").read_text(encoding="utf-8").splitlines()
    text = "\n".join(line for line in lines if not line.lstrip().startswith("#"))
    parts = re.split(r"^FROM ", text, flags=re.MULTILINE)[1:]
    return {part.split("\n", 1)[0].split(" AS ")[-1].strip(): part for part in parts}


def test_base_image_is_pinned_to_an_exact_version(repo: Path) -> None:
    text = (repo / "Dockerfile").read_text(encoding="utf-8")
    image = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", text, flags=re.MULTILINE)
    assert image is not None
    assert re.fullmatch(r"python:\d+\.\d+\.\d+-slim-\w+(@sha256:[0-9a-f]{64})?", image.group(1))


def test_operator_image_is_non_root_and_without_torch(repo: Path) -> None:
    stages = _stages(repo)
    assert list(stages) == ["build", "operator", "compress-runner"]
    operator = stages["operator"]
    assert "[compress]" not in operator
    assert "torch" not in operator
    assert re.search(r"^USER 10001:10001$", operator, flags=re.MULTILINE)
    runner = stages["compress-runner"]
    assert "[compress]" in runner
    assert runner.rstrip().splitlines()[-1] == "USER 10001:10001"


def test_build_context_leaves_out_caches_and_tests(repo: Path) -> None:
    ignored = set((repo / ".dockerignore").read_text(encoding="utf-8").split())
    assert {".git", ".venv", "tests", "**/__pycache__", ".mypy_cache"} <= ignored


def test_the_runner_image_can_compile_models(repo: Path) -> None:
    # evaluation.compile: torch.compile builds C++ (CPU) and Triton launchers (GPU) at run time,
    # into caches the home-less runner user can write.
    runner = _stages(repo)["compress-runner"]
    assert re.search(r"apt-get install -y --no-install-recommends g\+\+", runner)
    assert "TORCHINDUCTOR_CACHE_DIR=/tmp/" in runner
    assert "TRITON_CACHE_DIR=/tmp/" in runner
