"""docs/operations.md lists every flag and environment variable of `steward run`, every value of
the Helm chart (each also in values.schema.json) and every operator metric."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import yaml
from prometheus_client import REGISTRY

from steward.cli import main
from steward.controllers import metrics  # noqa: F401  (importing registers the metrics)


def _doc(repo: Path) -> str:
    return (repo / "docs" / "operations.md").read_text(encoding="utf-8")


def _leaves(values: dict[str, Any], prefix: str = "") -> Iterator[str]:
    for key, value in values.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value and key not in ("resources", "labels"):
            yield from _leaves(value, f"{path}.")
        else:
            yield path


def test_every_run_flag_and_env_var_is_documented(repo: Path) -> None:
    doc = _doc(repo)
    run = main.commands["run"]  # type: ignore[attr-defined]
    options = [p for p in run.params if isinstance(p, click.Option)]
    names = [n for o in options for n in o.opts + o.secondary_opts if n.startswith("--")]
    missing = [n for n in names if f"`{n}`" not in doc and f"{n}`" not in doc]
    envs = [o.envvar for o in options if isinstance(o.envvar, str)]
    missing += [e for e in envs if f"`{e}`" not in doc]
    assert len(names) > 20
    assert not missing, missing


def test_every_chart_value_is_documented_and_in_the_schema(repo: Path) -> None:
    chart = repo / "charts" / "steward"
    values = yaml.safe_load((chart / "values.yaml").read_text(encoding="utf-8"))
    schema = json.loads((chart / "values.schema.json").read_text(encoding="utf-8"))
    doc = _doc(repo)
    undocumented, unschemed = [], []
    for path in _leaves(values):
        if f"`{path}`" not in doc and f"`{path}," not in doc and f" {path}`" not in doc:
            undocumented.append(path)
        node = schema
        for part in path.split("."):
            node = node.get("properties", {}).get(part, {})
        if not node:
            unschemed.append(path)
    assert not undocumented, undocumented
    assert not unschemed, unschemed


def test_every_operator_metric_is_documented(repo: Path) -> None:
    doc = _doc(repo)
    names = {metric.name for metric in REGISTRY.collect() if metric.name.startswith("steward_")}
    assert len(names) >= 15
    missing = [n for n in sorted(names) if f"`{n}" not in doc]
    assert not missing, missing
