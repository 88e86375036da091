"""Kubernetes-style conditions, set the way the API conventions ask.

``lastTransitionTime`` moves only when a condition's status changes, so re-deciding the same
thing leaves status byte-for-byte equal and nothing is patched.
"""

from __future__ import annotations

from datetime import datetime

from steward.api.v1alpha1.common import Condition, ConditionStatus


def set_condition(
    conditions: list[Condition],
    type_: str,
    status: bool,
    reason: str,
    message: str,
    *,
    now: datetime,
    generation: int | None,
) -> list[Condition]:
    """``conditions`` with ``type_`` set as given (added, or replaced in place)."""
    value = ConditionStatus.TRUE if status else ConditionStatus.FALSE
    previous = next((c for c in conditions if c.type == type_), None)
    transition = (
        previous.last_transition_time if previous is not None and previous.status == value else now
    )
    updated = Condition(
        type=type_,
        status=value,
        reason=reason,
        message=message,
        last_transition_time=transition,
        observed_generation=generation,
    )
    if previous is None:
        return [*conditions, updated]
    return [updated if c.type == type_ else c for c in conditions]


def condition(conditions: list[Condition], type_: str) -> Condition | None:
    """The condition of ``type_``, if present."""
    return next((c for c in conditions if c.type == type_), None)
