"""The API models: wire names, defaults, cross-field rules and their CEL twins."""

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel, ValidationError

from steward.api.quantities import parse_duration
from steward.api.schema import Rule, StewardModel, kubernetes_camel
from steward.api.v1alpha1 import KINDS, Budget, InferenceService, TrainingJob
from steward.crdgen import crd_for


@pytest.mark.parametrize(
    ("python", "wire"),
    [
        ("gpus_per_worker", "gpusPerWorker"),
        ("cost_per_hour_usd", "costPerHourUSD"),
        ("cost_per_1k_requests_usd", "costPer1kRequestsUSD"),
        ("kg_co2e", "kgCO2e"),
        ("energy_kwh", "energyKWh"),
        ("allocated_gpus", "allocatedGPUs"),
        ("gpu_model", "gpuModel"),
        ("latency_p95_ms", "latencyP95Ms"),
        ("phase", "phase"),
    ],
)
def test_wire_names_are_kubernetes_camel_case(python: str, wire: str) -> None:
    assert kubernetes_camel(python) == wire


def _load(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _manifests(repo: Path) -> list[dict[str, Any]]:
    docs = []
    for folder in ("policies", "examples"):
        for path in sorted((repo / folder).glob("*.yaml")):
            docs.extend(_load(path))
    return docs


def test_every_kind_has_an_example(repo: Path) -> None:
    assert {d["kind"] for d in _manifests(repo)} == set(KINDS)


def test_examples_round_trip_through_the_models(repo: Path) -> None:
    for document in _manifests(repo):
        model = KINDS[document["kind"]].model_validate(document)
        again = KINDS[document["kind"]].model_validate(model.to_wire())
        assert again == model
        # Everything the author wrote survives (defaults may be added, nothing is lost).
        assert _is_subset(document["spec"], model.to_wire()["spec"]), document["metadata"]["name"]


def _is_subset(written: Any, stored: Any) -> bool:
    if isinstance(written, dict):
        return all(k in stored and _is_subset(v, stored[k]) for k, v in written.items())
    if isinstance(written, list):
        return len(written) == len(stored) and all(map(_is_subset, written, stored))
    if isinstance(written, str) and isinstance(stored, str):
        return written == stored or _same_duration(written, stored)
    return bool(written == stored) or str(written) == str(stored)


def _same_duration(a: str, b: str) -> bool:
    try:
        return parse_duration(a) == parse_duration(b)
    except ValueError:
        return False


def test_defaults_are_filled_in() -> None:
    job = TrainingJob.model_validate(
        {"metadata": {"name": "t"}, "spec": {"template": {"spec": {"containers": [{"name": "c"}]}}}}
    )
    assert job.spec.workers == 1
    assert job.spec.capacity.type == "OnDemand"
    assert job.spec.priority == "Normal"
    assert job.to_wire()["spec"]["capacity"]["fallbackAfter"] == "15m"


def test_unknown_fields_are_refused() -> None:
    with pytest.raises(ValidationError, match=r"extra_forbidden|Extra inputs"):
        TrainingJob.model_validate(
            {"spec": {"template": {"spec": {"containers": [{}]}}, "gpus": 4}}
        )


def test_container_and_pod_spec_pass_unknown_fields_through() -> None:
    service = InferenceService.model_validate(
        {
            "spec": {
                "predictor": {
                    "model": {"modelFormat": {"name": "onnx"}, "storageUri": "pvc://m/x"},
                    "container": {"image": "srv:1", "ports": [{"containerPort": 8080}]},
                }
            }
        }
    )
    assert service.to_wire()["spec"]["predictor"]["container"]["ports"] == [{"containerPort": 8080}]


def _models_with_rules() -> list[type[StewardModel]]:
    seen: dict[str, type[StewardModel]] = {}

    def visit(model: type[BaseModel]) -> None:
        if not issubclass(model, StewardModel) or model.__name__ in seen:
            return
        seen[model.__name__] = model
        for info in model.model_fields.values():
            for candidate in _model_types(info.annotation):
                visit(candidate)

    for kind in KINDS.values():
        visit(kind)
    return [m for m in seen.values() if m.rules]


def _model_types(annotation: Any) -> list[type[BaseModel]]:
    found: list[type[BaseModel]] = []
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        found.append(annotation)
    for arg in getattr(annotation, "__args__", ()) or ():
        found.extend(_model_types(arg))
    for meta in getattr(annotation, "__metadata__", ()) or ():
        found.extend(_model_types(meta))
    origin = getattr(annotation, "__origin__", None)
    if origin is not None and origin is not annotation:
        found.extend(_model_types(origin))
    return found


RULED = _models_with_rules()


def test_rules_are_found_for_every_cross_field_constraint() -> None:
    names = {m.__name__ for m in RULED}
    assert {"Predictor", "BudgetSpec", "GPUNodePoolSpec", "Period", "TrainingJobSpec"} <= names


def _schemas_by_title() -> dict[str, list[dict[str, Any]]]:
    """Every object schema in the generated CRDs that carries CEL rules, by rule text."""
    found: dict[str, list[dict[str, Any]]] = {}

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for rule in node.get("x-kubernetes-validations", []):
                found.setdefault(rule["rule"], []).append(node)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for kind in KINDS.values():
        walk(crd_for(kind))
    return found


SCHEMAS_BY_RULE = _schemas_by_title()


@pytest.mark.parametrize("rule", [r for m in RULED for r in m.rules], ids=lambda r: r.message[:40])
def test_every_rule_is_published_and_names_real_fields(rule: Rule) -> None:
    schemas = SCHEMAS_BY_RULE.get(rule.cel)
    assert schemas, f"rule not in any CRD: {rule.cel}"
    for schema in schemas:
        properties = schema["properties"]
        if rule.field:
            assert rule.field in properties
        # Every `self.a.b` the CEL reads exists in the schema, so a typo cannot hide there.
        for path in re.findall(r"self((?:\.[A-Za-z_]\w*)+)", rule.cel):
            node = schema
            for name in path.strip(".").split("."):
                if name in ("map", "all", "exists_one", "isSorted"):
                    break
                assert name in node.get("properties", {}), f"{name} in {rule.cel}"
                node = node["properties"][name]


def test_budget_thresholds_must_ascend_strictly() -> None:
    spec = {
        "limits": {"usd": 10},
        "thresholds": [
            {"percent": 50, "actions": ["Notify"]},
            {"percent": 50, "actions": ["Notify"]},
        ],
    }
    with pytest.raises(ValidationError, match="strictly ascending"):
        Budget.model_validate({"spec": spec})
    spec["thresholds"][1]["percent"] = 80
    assert Budget.model_validate({"spec": spec}).spec.thresholds[1].percent == 80


def test_repeated_values_in_a_set_list_are_refused() -> None:
    spec = {"limits": {"usd": 10}, "thresholds": [{"percent": 50, "actions": ["Notify", "Notify"]}]}
    with pytest.raises(ValidationError, match="at most once"):
        Budget.model_validate({"spec": spec})
