"""A directive's Events, and a governor CompressionJob's, are said once, whoever says them: the
leader that acted, or the one that takes over after it died between its action and its Events."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from steward.act.governor import (
    announce,
    announce_compression,
    directive_event_name,
    start_compression,
)
from steward.act.kube import Kube, TransientError
from steward.api.constants import ANNOTATION_GOVERNOR
from steward.api.directive import GovernorAction, GovernorDirective
from steward.api.v1alpha1.common import PolicyMode
from steward.api.v1alpha1.compressionjob import CompressionJobSpec
from steward.cost.usage import WorkloadRef
from steward.policy.compression import CompressionRequest
from steward.policy.notes import Note

NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


class _Apiserver(Kube):
    """Events by name, as the apiserver keeps them: a second create of a name is a 409."""

    def __init__(self) -> None:
        self.events: dict[str, dict[str, Any]] = {}

    def request(self, method: str, path: str, body: dict[str, Any] | None = None,
                **_: Any) -> dict[str, Any]:  # fmt: skip
        assert method == "POST"
        assert body is not None
        name = body["metadata"]["name"]
        if name in self.events:
            raise TransientError(409, f"events {name} already exists")
        self.events[name] = body
        return body


def _workload(directive: GovernorDirective, uid: str = "uid-1") -> dict[str, Any]:
    return {
        "apiVersion": "steward.ai/v1alpha1", "kind": "TrainingJob",
        "metadata": {"name": "low", "namespace": "team", "uid": uid,
                     "annotations": {ANNOTATION_GOVERNOR: directive.to_annotation()}},
    }  # fmt: skip


SHIFT, SUSPEND = GovernorAction.SHIFT_TO_SPOT, GovernorAction.SUSPEND
DIRECTIVE = GovernorDirective(
    policy="team", actions=[SHIFT, SUSPEND], added=[SUSPEND], suspend=True, since=NOW,
    reasons=["ShiftToSpot: Budget b at 80 %", "SuspendLowPriority: Budget b at 95 %"],
)  # fmt: skip


def test_a_successor_says_only_what_the_last_change_added_and_only_once() -> None:
    kube, workload = _Apiserver(), _workload(DIRECTIVE)
    # ShiftToSpot was added (and said) by an earlier change; this one added SuspendLowPriority.
    assert announce(kube, workload, now=NOW) == 1
    [event] = kube.events.values()
    assert (event["reason"], event["note"]) == ("SuspendLowPriority",
                                                "SuspendLowPriority: Budget b at 95 %")  # fmt: skip
    assert announce(kube, workload, now=NOW) == 0


def test_what_the_leader_said_before_dying_is_not_said_again() -> None:
    kube, workload = _Apiserver(), _workload(DIRECTIVE)
    name = directive_event_name(workload, SUSPEND)
    assert kube.event(workload, Note("Normal", "SuspendLowPriority", "said"), now=NOW,
                      action="SuspendLowPriority", name=name)  # fmt: skip
    assert announce(kube, workload, now=NOW) == 0
    assert len(kube.events) == 1


def test_event_names_differ_per_object_directive_and_action() -> None:
    workload = _workload(DIRECTIVE)
    names = {
        directive_event_name(workload, SUSPEND),
        directive_event_name(workload, SHIFT),
        directive_event_name(_workload(DIRECTIVE, uid="uid-2"), SUSPEND),
        directive_event_name(_workload(DIRECTIVE.model_copy(update={"since": NOW.replace(hour=9)})),
                             SUSPEND),
    }  # fmt: skip
    assert len(names) == 4
    assert all(name.startswith("low.") and len(name) <= 253 for name in names)


def test_the_added_actions_are_bookkeeping_not_part_of_the_effect() -> None:
    assert DIRECTIVE.effect() == DIRECTIVE.model_copy(update={"added": []}).effect()


SERVICE = {"apiVersion": "steward.ai/v1alpha1", "kind": "InferenceService",
           "metadata": {"name": "svc", "namespace": "team", "uid": "uid-s"}}  # fmt: skip
REQUEST = CompressionRequest(
    ref=WorkloadRef("InferenceService", "team", "svc"), policy="compress", mode=PolicyMode.ENFORCE,
    name="svc-cmp-1", summary="GPU utilisation 12 % < 30 % for 1 h",
    spec=CompressionJobSpec.model_validate({
        "source": {"storageUri": "pvc://m/model.pt", "format": "TorchSave"}, "target": "svc",
        "methods": ["DynamicInt8"], "evaluation": {"datasetUri": "pvc://m/eval.pt"},
        "outputUri": "pvc://m/out"}),
)  # fmt: skip


def test_a_compression_jobs_event_is_said_once_whoever_says_it() -> None:
    kube = _Apiserver()
    assert start_compression(kube, SERVICE, None, REQUEST, now=NOW)
    job = kube.events.pop("svc-cmp-1")  # the fake keeps every object by name
    assert job["metadata"]["annotations"] == {"steward.ai/governor-reason": REQUEST.summary}
    [said] = kube.events.values()
    assert said["reason"] == "Compress"
    assert said["note"] == "CompressionJob svc-cmp-1: " + REQUEST.summary
    # The leader said it: its successor does not say it again.
    assert not announce_compression(kube, SERVICE, job, now=NOW)
    # The leader died after creating the job, before its Event: the successor says it, once.
    kube.events.clear()
    assert announce_compression(kube, SERVICE, job, now=NOW)
    [again] = kube.events.values()
    assert (again["reason"], again["note"]) == (said["reason"], said["note"])
    assert not announce_compression(kube, SERVICE, job, now=NOW)


def test_a_compression_job_the_governor_did_not_create_is_not_announced() -> None:
    kube = _Apiserver()
    users = {"metadata": {"name": "mine", "namespace": "team", "labels": {}}}
    assert not announce_compression(kube, SERVICE, users, now=NOW)
    assert kube.events == {}
