"""What the governor applies to a workload, as the workload controllers read it.

The governor never edits a user's spec. It writes one annotation, ``steward.ai/governor``, whose
JSON is a :class:`GovernorDirective`; the TrainingJob and InferenceService controllers overlay
it on the spec (``effective = spec + directive``). Removing the annotation reverses every action
at once, and a new leader reads what the old one applied from the object itself, so nothing is
applied twice.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import Field, ValidationError

from steward.api.constants import ANNOTATION_GOVERNOR
from steward.api.quantities import Percent
from steward.api.schema import StewardModel
from steward.api.v1alpha1.trainingjob import CapacityPreference


class GovernorAction(StrEnum):
    """What the governor does to one workload, mildest first (the ladder's order)."""

    SHIFT_TO_SPOT = "ShiftToSpot"
    SCALE_TO_MIN = "ScaleInferenceToMin"
    SUSPEND = "SuspendLowPriority"
    BLOCK = "BlockNewWork"
    COMPRESS = "Compress"


class GovernorDirective(StewardModel):
    """The overlay on one workload's spec; only the fields set change anything.

    Attributes:
        policy: The CostPolicy whose decision this is.
        actions: The actions in force, in ladder order.
        capacity: Training: the capacity preference that replaces ``spec.capacity``.
        suspend: Training: stop at the next checkpoint and start nothing.
        replicas: Serving: desired replicas (never below ``minReplicas``).
        max_spot_percent: Serving: share of the replicas above the base that may run on spot.
        reasons: Why, one line per action, with the numbers behind it.
        since: When the governor last changed this directive (cooldowns count from it).
        added: The actions that change added (bookkeeping: a leader that takes over makes
            sure their Events exist, in case the one before died between patch and Event).
    """

    policy: Annotated[str, Field(max_length=253)]
    actions: list[GovernorAction] = Field(default_factory=list)
    capacity: CapacityPreference | None = None
    suspend: bool = False
    replicas: Annotated[int, Field(ge=0, le=1000)] | None = None
    max_spot_percent: Percent | None = None
    reasons: list[Annotated[str, Field(max_length=1024)]] = Field(default_factory=list)
    since: datetime
    added: list[GovernorAction] = Field(default_factory=list)

    def effect(self) -> dict[str, Any]:
        """What the directive changes, without the bookkeeping (to compare two directives)."""
        return self.model_dump(mode="json", exclude={"reasons", "since", "policy", "added"})

    def to_annotation(self) -> str:
        return json.dumps(self.model_dump(mode="json", exclude_defaults=True), sort_keys=True)


def read_directive(annotations: Mapping[str, str] | None) -> GovernorDirective | None:
    """The directive in an object's annotations; None when absent or unreadable (an unreadable
    one, e.g. hand-edited, applies nothing rather than half of itself)."""
    text = (annotations or {}).get(ANNOTATION_GOVERNOR)
    if not text:
        return None
    try:
        return GovernorDirective.model_validate(json.loads(text))
    except (ValueError, ValidationError):
        return None
