"""`steward validate`: every broken variant is refused with the exact field and reason."""

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from steward.validation import Problem, field_path, validate_document, validate_paths
from tests.cases import BROKEN, BUDGET, TRAINING, load_doc, set_field


@pytest.mark.parametrize(
    ("file", "field", "value", "reported", "words"),
    BROKEN,
    ids=[f"{b[1]}={b[2]!r}" for b in BROKEN],
)
def test_broken_variants_name_the_field(
    repo: Path, file: str, field: str, value: Any, reported: str, words: str
) -> None:
    document = copy.deepcopy(load_doc(repo, file))
    assert validate_document(document, file) == []
    set_field(document, field, value)
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
    document = load_doc(repo, BUDGET)
    assert (
        validate_document({**document, "apiVersion": "steward.ai/v1"}, "f")[0].path == "apiVersion"
    )
    [problem] = validate_document({**document, "kind": "Budgett"}, "f")
    assert problem.path == "kind"
    assert "TrainingJob" in problem.message


def test_metadata_is_checked(repo: Path) -> None:
    document = copy.deepcopy(load_doc(repo, BUDGET))
    document["metadata"]["namespace"] = "team-a"
    assert [p.path for p in validate_document(document, "f")] == ["metadata.namespace"]
    job = copy.deepcopy(load_doc(repo, TRAINING))
    job["metadata"]["name"] = "x" * 60
    [problem] = validate_document(job, "f")
    assert problem.path == "metadata.name"
    assert "at most 52" in problem.message
    del job["metadata"]["name"]
    assert [p.path for p in validate_document(job, "f")] == ["metadata.name"]


def test_files_mix_other_kinds_and_several_documents(tmp_path: Path, repo: Path) -> None:
    budget = load_doc(repo, BUDGET)
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
