"""The generated CRDs on a real kube-apiserver: accepted, and enforcing the same rules."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from steward.devcluster.cluster import ClusterState, kubectl
from steward.devcluster.processes import ClusterError
from tests.cases import BROKEN, PYTHON_ONLY, load_doc, set_field
from tests.conftest import REPO


def _server_dry_run(state: ClusterState, document: dict[str, Any]) -> str:
    """kubectl apply --dry-run=server; returns the error text, or '' when accepted."""
    try:
        kubectl(state, "apply", "--dry-run=server", "-f", "-", stdin=yaml.safe_dump(document))
    except ClusterError as error:
        return str(error)
    return ""


def test_every_crd_is_established_and_structural(dev_cluster: ClusterState) -> None:
    names = kubectl(dev_cluster, "get", "crd", "-o", "jsonpath={.items[*].metadata.name}").split()
    assert {n for n in names if n.endswith(".steward.ai")} == {
        f"{yaml.safe_load(p.read_text())['metadata']['name']}"
        for p in (REPO / "crds").glob("*.yaml")
    }
    conditions = kubectl(
        dev_cluster,
        "get",
        "crd",
        "-o",
        "jsonpath={range .items[*]}{.status.conditions[*].type}{'\\n'}{end}",
    )
    assert "NonStructuralSchema" not in conditions


def test_shipped_manifests_are_accepted(dev_cluster: ClusterState, namespace: str) -> None:
    for folder in ("policies", "examples"):
        for path in sorted((REPO / folder).glob("*.yaml")):
            for document in yaml.safe_load_all(path.read_text()):
                if document["metadata"].get("namespace"):
                    document["metadata"]["namespace"] = namespace
                assert _server_dry_run(dev_cluster, document) == "", path


def test_short_names_and_category_work(dev_cluster: ClusterState) -> None:
    for short in ("tj", "sisvc", "cpol", "bdg", "gnp", "cj"):
        kubectl(dev_cluster, "get", short, "-A")
    kubectl(dev_cluster, "get", "steward", "-A")


@pytest.mark.parametrize(
    ("file", "field", "value", "reported", "words"),
    [case for case in BROKEN if case[1] not in PYTHON_ONLY],
    ids=[f"{c[1]}={c[2]!r}" for c in BROKEN if c[1] not in PYTHON_ONLY],
)
def test_apiserver_refuses_broken_variants_naming_the_field(
    dev_cluster: ClusterState,
    namespace: str,
    file: str,
    field: str,
    value: Any,
    reported: str,
    words: str,
) -> None:
    document = copy.deepcopy(load_doc(REPO, file))
    if document["metadata"].get("namespace"):
        document["metadata"]["namespace"] = namespace
    set_field(document, field, value)
    error = _server_dry_run(dev_cluster, document)
    assert error, f"the apiserver accepted {field}={value!r}"
    # The apiserver names list items as [i] like we do; its path is the field or a parent of it.
    assert reported.split("[", maxsplit=1)[0] in error or field.rsplit(".", 1)[0] in error, error


def test_python_only_checks_are_indeed_beyond_cel(dev_cluster: ClusterState) -> None:
    document = copy.deepcopy(load_doc(REPO, "policies/budget-team-ml-research.yaml"))
    set_field(document, "spec.period.timeZone", "Mars/Olympus")
    assert _server_dry_run(dev_cluster, document) == ""


def test_too_long_names_are_refused(dev_cluster: ClusterState, namespace: str) -> None:
    document = copy.deepcopy(load_doc(REPO, "examples/trainingjob-spot.yaml"))
    document["metadata"].update(name="x" * 60, namespace=namespace)
    assert "at most 52 characters" in _server_dry_run(dev_cluster, document)
