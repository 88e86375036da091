"""The generated CRDs: structural, complete, and equal to what the repository holds."""

from pathlib import Path
from typing import Any

import pytest
import yaml

from steward import crdgen
from steward.api.schema import StewardModel
from steward.api.v1alpha1 import KINDS
from steward.api.v1alpha1.common import CustomResource
from steward.cli import DEFAULT_CRD_DIRS

FORBIDDEN_KEYS = {"$ref", "$defs", "anyOf", "allOf", "oneOf", "title", "uniqueItems", "const"}


def test_repository_crds_equal_the_generated_ones(repo: Path) -> None:
    assert crdgen.drift([repo / d for d in DEFAULT_CRD_DIRS]) == []


def test_drift_reports_edited_missing_and_stale_files(tmp_path: Path) -> None:
    crdgen.write(tmp_path)
    edited = tmp_path / "steward.ai_budgets.yaml"
    edited.write_text(edited.read_text().replace("minimum: 0", "minimum: -1", 1))
    (tmp_path / "steward.ai_gpunodepools.yaml").unlink()
    (tmp_path / "steward.ai_oldkinds.yaml").write_text("{}")
    problems = crdgen.drift([tmp_path])
    assert len(problems) == 3
    assert any("budgets" in p and "differs" in p for p in problems)
    assert any("gpunodepools" in p and "missing" in p for p in problems)
    assert any("oldkinds" in p and "not generated" in p for p in problems)


def _walk(node: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    found = []
    if isinstance(node, dict):
        found.append((path, node))
        for key in ("properties",):
            for name, child in node.get(key, {}).items():
                found.extend(_walk(child, f"{path}.{name}"))
        if "items" in node:
            found.extend(_walk(node["items"], f"{path}[]"))
        if isinstance(node.get("additionalProperties"), dict):
            found.extend(_walk(node["additionalProperties"], f"{path}{{}}"))
    return found


@pytest.mark.parametrize("kind", KINDS.values(), ids=list(KINDS))
def test_schemas_are_structural(kind: type[CustomResource]) -> None:
    schema = crdgen.crd_for(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for path, node in _walk(schema):
        escape = node.get("x-kubernetes-int-or-string") or node.get(
            "x-kubernetes-preserve-unknown-fields"
        )
        assert "type" in node or escape, f"{path} has no type"
        assert not FORBIDDEN_KEYS & node.keys(), f"{path}: {FORBIDDEN_KEYS & node.keys()}"
        assert node.get("additionalProperties") is not False, path
        assert "default" not in node or None not in _values(node["default"]), path
        if node.get("x-kubernetes-list-type") == "set":
            assert node["items"]["type"] in ("string", "integer", "number"), path


def _values(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [x for v in value.values() for x in _values(v)]
    if isinstance(value, list):
        return [x for v in value for x in _values(v)]
    return [value]


@pytest.mark.parametrize("kind", KINDS.values(), ids=list(KINDS))
def test_printer_columns_point_at_real_fields(kind: type[CustomResource]) -> None:
    version = crdgen.crd_for(kind)["spec"]["versions"][0]
    schema = version["schema"]["openAPIV3Schema"]
    for column in version["additionalPrinterColumns"]:
        node = schema
        for name in column["jsonPath"].strip(".").split("."):
            if name == "creationTimestamp":
                break
            node = node["properties"][name]
        if column["type"] in ("integer", "number", "boolean"):
            assert node["type"] in (column["type"], "integer"), column


@pytest.mark.parametrize("kind", KINDS.values(), ids=list(KINDS))
def test_defaults_in_the_crd_are_the_models_defaults(kind: type[CustomResource]) -> None:
    # A default the apiserver fills in must be a value the model itself accepts and would pick.
    schema = crdgen.crd_for(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    spec_model = kind.model_fields["spec"].annotation
    for name, node in schema["properties"]["spec"]["properties"].items():
        if "default" in node and isinstance(node["default"], dict):
            field = next(f for f in spec_model.model_fields.values() if f.alias == name)
            made = field.get_default(call_default_factory=True, validated_data={})
            wire = made.to_wire() if isinstance(made, StewardModel) else made
            assert wire == node["default"], name


def test_names_scopes_and_short_names_follow_the_design() -> None:
    expected = {
        "TrainingJob": ("trainingjobs", "Namespaced", ["tj"]),
        "InferenceService": ("inferenceservices", "Namespaced", ["sisvc"]),
        "CostPolicy": ("costpolicies", "Cluster", ["cpol"]),
        "Budget": ("budgets", "Cluster", ["bdg"]),
        "GPUNodePool": ("gpunodepools", "Cluster", ["gnp"]),
        "CompressionJob": ("compressionjobs", "Namespaced", ["cj"]),
    }
    for kind, (plural, scope, short) in expected.items():
        crd = crdgen.crd_for(KINDS[kind])
        assert crd["metadata"]["name"] == f"{plural}.steward.ai"
        assert crd["spec"]["scope"] == scope
        assert crd["spec"]["names"]["shortNames"] == short
        assert crd["spec"]["names"]["categories"] == ["steward"]
        assert crd["spec"]["versions"][0]["subresources"] == {"status": {}}


def test_yaml_has_no_anchors_and_parses_back() -> None:
    for name, text in crdgen.generate().items():
        assert "&id" not in text, name
        assert "*id" not in text, name
        assert yaml.safe_load(text)["kind"] == "CustomResourceDefinition"


def test_unions_cannot_be_published() -> None:
    with pytest.raises(crdgen.SchemaError, match="unions"):
        crdgen.structural({"anyOf": [{"type": "string"}, {"type": "integer"}]}, {})
    with pytest.raises(crdgen.SchemaError, match="no type"):
        crdgen.structural({"description": "nothing"}, {})
