"""`steward validate`: every broken variant is refused with the exact field and reason."""

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from steward.validation import Problem, field_path, validate_document, validate_paths

BUDGET = "policies/budget-team-ml-research.yaml"
POOLS = "policies/gpunodepools.yaml"
TRAINING = "examples/trainingjob-spot.yaml"
SERVICE = "examples/inferenceservice.yaml"


def _doc(repo: Path, name: str, index: int = 0) -> dict[str, Any]:
    return [d for d in yaml.safe_load_all((repo / name).read_text()) if d][index]


def _set(document: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split(".")
    node: Any = document
    for key in parents:
        node = node[int(key)] if key.isdigit() else node[key]
    if value is DELETE:
        del node[last]
    else:
        node[int(last) if last.isdigit() else last] = value


DELETE = object()

BROKEN = [
    # (file, field to break, bad value, path reported, words in the message)
    (BUDGET, "spec.limits.usd", "lots", "spec.limits.usd", "must be a number"),
    (BUDGET, "spec.limits.usd", -100, "spec.limits.usd", "greater than or equal to 0"),
    (BUDGET, "spec.period.resetDay", 3, "spec.period.resetDay", "unknown field"),
    (BUDGET, "spec.period.type", "Yearly", "spec.period.type", "'Monthly'"),
    (BUDGET, "spec.period.timeZone", "Mars/Olympus", "spec.period.timeZone", "time zone"),
    (BUDGET, "spec.thresholds.1.percent", 40, "spec.thresholds", "strictly ascending"),
    (BUDGET, "spec.thresholds.0.actions", ["Panic"], "spec.thresholds[0].actions[0]", "'Notify'"),
    (BUDGET, "spec.limits", {}, "spec.limits", "at least one of usd"),
    (BUDGET, "spec.period.resetWeekday", "Monday", "spec.period.resetWeekday", "Weekly"),
    (BUDGET, "spec.thresholds", DELETE, "spec.thresholds", "required field is missing"),
    (POOLS, "spec.minNodes", 9, "spec.maxNodes", "at least minNodes"),
    (POOLS, "spec.gpusPerNode", "eight", "spec.gpusPerNode", "valid integer"),
    (POOLS, "spec.provider.ref", DELETE, "spec.provider.ref", "required for the ClusterAPI"),
    (POOLS, "spec.pricePerNodeHourUSD", -3, "spec.pricePerNodeHourUSD", "greater than or equal"),
    (POOLS, "spec.scaleDown.idleTime", "0s", "spec.scaleDown.idleTime", "longer than zero"),
    (TRAINING, "spec.capacity.type", "Preemptible", "spec.capacity.type", "'SpotWithFallback'"),
    (TRAINING, "spec.checkpoint", DELETE, "spec.checkpoint", "needs a checkpoint"),
    (TRAINING, "spec.checkpoint.interval", 1200, "spec.checkpoint.interval", "duration"),
    (
        TRAINING,
        "spec.checkpoint.resume.argument",
        DELETE,
        "spec.checkpoint.resume.argument",
        "required when strategy is Argument",
    ),
    (TRAINING, "spec.template.spec.containers", [], "spec.template.spec.containers", "at least 1"),
    (TRAINING, "spec.workers", 0, "spec.workers", "greater than or equal to 1"),
    (
        SERVICE,
        "spec.predictor.minReplicas",
        9,
        "spec.predictor.maxReplicas",
        "at least minReplicas",
    ),
    (SERVICE, "spec.capacity.onDemandBase", 3, "spec.capacity", "onDemandBase cannot exceed"),
    (
        SERVICE,
        "spec.compression.allowedMethods",
        ["BF16", "BF16"],
        "spec.compression.allowedMethods",
        "at most once",
    ),
    (
        SERVICE,
        "spec.compression.maxAccuracyDrop",
        1.5,
        "spec.compression.maxAccuracyDrop",
        "less than or equal to 1",
    ),
]


@pytest.mark.parametrize(
    ("file", "field", "value", "reported", "words"),
    BROKEN,
    ids=[f"{b[1]}={b[2]!r}" for b in BROKEN],
)
def test_broken_variants_name_the_field(
    repo: Path, file: str, field: str, value: Any, reported: str, words: str
) -> None:
    document = copy.deepcopy(_doc(repo, file))
    assert validate_document(document, file) == []
    _set(document, field, value)
    problems = validate_document(document, file)
    assert [p.path for p in problems] == [reported], problems
    assert words in problems[0].message
    assert problems[0].kind == document["kind"]
    assert problems[0].name == document["metadata"]["name"]


def test_every_shipped_manifest_is_valid(repo: Path) -> None:
    report = validate_paths([repo / "policies", repo / "examples"])
    assert report.problems == []
    assert len(report.checked) >= 10


def test_wrong_api_version_and_kind_are_named(repo: Path) -> None:
    document = _doc(repo, BUDGET)
    assert (
        validate_document({**document, "apiVersion": "steward.ai/v1"}, "f")[0].path == "apiVersion"
    )
    [problem] = validate_document({**document, "kind": "Budgett"}, "f")
    assert problem.path == "kind"
    assert "TrainingJob" in problem.message


def test_metadata_is_checked(repo: Path) -> None:
    document = copy.deepcopy(_doc(repo, BUDGET))
    document["metadata"]["namespace"] = "team-a"
    assert [p.path for p in validate_document(document, "f")] == ["metadata.namespace"]
    job = copy.deepcopy(_doc(repo, TRAINING))
    job["metadata"]["name"] = "x" * 60
    [problem] = validate_document(job, "f")
    assert problem.path == "metadata.name"
    assert "at most 52" in problem.message
    del job["metadata"]["name"]
    assert [p.path for p in validate_document(job, "f")] == ["metadata.name"]


def test_files_mix_other_kinds_and_several_documents(tmp_path: Path, repo: Path) -> None:
    budget = _doc(repo, BUDGET)
    broken = copy.deepcopy(budget)
    broken["spec"]["limits"]["usd"] = -1
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ml"}}
    (tmp_path / "mixed.yaml").write_text(yaml.safe_dump_all([namespace, budget, broken]))
    (tmp_path / "notes.txt").write_text("not yaml: [")
    report = validate_paths([tmp_path])
    assert report.skipped == [f"{tmp_path / 'mixed.yaml'}#1"]
    assert len(report.checked) == 2
    [problem] = report.problems
    assert problem.source.endswith("mixed.yaml#3")
    assert str(problem).endswith("spec.limits.usd: Input should be greater than or equal to 0")


def test_yaml_syntax_errors_give_the_line(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("spec:\n  limits: [\n")
    [problem] = validate_paths([tmp_path]).problems
    assert "not valid YAML" in problem.message
    assert "line 3" in problem.message


def test_field_path_formats_list_indexes() -> None:
    assert field_path(("spec", "thresholds", 2, "percent")) == "spec.thresholds[2].percent"
    assert field_path(()) == ""
    assert str(Problem("f.yaml", "", "bad")) == "f.yaml: bad"
