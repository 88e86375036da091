"""A directive's Events are said once, whoever says them: the leader that patched it, or the one
that takes over after it died between its patch and its Events."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from steward.act.governor import announce, directive_event_name
from steward.act.kube import Kube, TransientError
from steward.api.constants import ANNOTATION_GOVERNOR
from steward.api.directive import GovernorAction, GovernorDirective
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
