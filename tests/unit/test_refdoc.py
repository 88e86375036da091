"""The generated API reference covers every field and rule, and stays in step with the models."""

from pathlib import Path

from click.testing import CliRunner

from steward import refdoc
from steward.api.v1alpha1 import KINDS
from steward.cli import DEFAULT_REFERENCE, main
from steward.crdgen import crd_for


def _fields(node: dict, path: str) -> list[str]:
    found = []
    for name, child in node.get("properties", {}).items():
        found.append(f"{path}.{name}")
        target = child.get("items", child) if child.get("type") == "array" else child
        suffix = "[]" if target is not child else ""
        found.extend(_fields(target, f"{path}.{name}{suffix}"))
    return found


def test_every_field_and_rule_is_documented() -> None:
    text = refdoc.render()
    for kind in KINDS.values():
        schema = crd_for(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        for part in ("spec", "status"):
            for field in _fields(schema["properties"][part], part):
                assert f"| `{field}`" in text, field
    for rule in (
        "strictly ascending",
        "maxReplicas must be at least minReplicas",
        "spot capacity needs a checkpoint",
    ):
        assert rule in text


def test_durations_and_enums_read_as_such() -> None:
    text = refdoc.render()
    assert "| `spec.checkpoint.interval` (required) | duration > 0 |" in text
    assert "| `spec.capacity.type` | `OnDemand` \\| `Spot` \\| `SpotWithFallback` |" in text


def test_repository_reference_is_current(repo: Path) -> None:
    assert (repo / DEFAULT_REFERENCE).read_text(encoding="utf-8") == refdoc.render()


def test_reference_check_fails_when_stale(tmp_path: Path) -> None:
    out = tmp_path / "ref.md"
    out.write_text("old\n")
    runner = CliRunner()
    assert runner.invoke(main, ["reference", "--check", "--out", str(out)]).exit_code == 1
    assert runner.invoke(main, ["reference", "--out", str(out)]).exit_code == 0
    assert runner.invoke(main, ["reference", "--check", "--out", str(out)]).exit_code == 0
