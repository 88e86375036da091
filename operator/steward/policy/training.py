"""A TrainingJob's lifecycle: which attempt runs, on which capacity, and when it moves.

Each attempt is one batch/v1 Job ``<name>-<attempt>``. An attempt ends when it completes, fails
on its own, or when Steward stops it: its node was preempted or is about to be (a disruption
taint), spot capacity did not come in time, the deadline is at risk, or the job was suspended.
The next attempt resumes from the checkpoint. Ended attempts stay (suspended, annotated with
why and when) as the record that status counts are derived from, so the counts survive operator
restarts and can always be recomputed from the cluster.

Capacity of a new attempt, by ``spec.capacity.type``:

- ``OnDemand``: on-demand; ``Spot``: spot, always (it waits for capacity);
- ``SpotWithFallback``: spot, until ``maxPreemptions`` preemptions have happened, or spot
  capacity did not arrive within ``fallbackAfter``, or the deadline is at risk (less than
  ``fallbackAfter`` left: one more wait for spot could miss it). Once on on-demand it stays.

Lost GPU-hours of an interrupted attempt are the work since its last checkpoint:
``(run time mod checkpoint interval) x workers x GPUs per worker``, the run time measured from
the Job's start (so it includes scheduling time: an upper bound); without a checkpoint, all of it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Final

from steward.api.constants import CAPACITY_LABEL_SPOT
from steward.api.directive import GovernorDirective, read_directive
from steward.api.v1alpha1.common import CapacityType
from steward.api.v1alpha1.trainingjob import (
    CapacityStrategy,
    TrainingJob,
    TrainingJobPhase,
    TrainingJobSpec,
    TrainingJobStatus,
)
from steward.cost.accounting import SECONDS_PER_HOUR
from steward.policy.conditions import condition, set_condition
from steward.policy.notes import Note
from steward.policy.placement import is_disrupting
from steward.snapshot import JobRecord, NodeRecord, PodRecord

#: Reason of the ``Valid`` condition for a spec Kubernetes or Steward refused.
INVALID_SPEC = "InvalidSpec"


class EndReason(StrEnum):
    """Why Steward ended an attempt (the ``steward.ai/ended`` annotation of its Job)."""

    PREEMPTED = "Preempted"
    DISRUPTED = "Disrupted"
    SPOT_UNAVAILABLE = "SpotUnavailable"
    DEADLINE_AT_RISK = "DeadlineAtRisk"
    SUSPENDED = "Suspended"
    #: Moved between spot and on-demand at a checkpoint (the capacity asked for changed).
    RESCHEDULED = "Rescheduled"


#: Longest a governor-initiated stop waits past a checkpoint (it waits for the next one after).
CHECKPOINT_GRACE_MAX: Final = timedelta(seconds=60)
CHECKPOINT_GRACE_MIN: Final = timedelta(seconds=2)


@dataclass(frozen=True)
class StartAttempt:
    """Create the Job of ``attempt`` on ``capacity``; ``resume`` tells it to load a checkpoint."""

    attempt: int
    capacity: CapacityType
    resume: bool
    note: Note


@dataclass(frozen=True)
class EndAttempt:
    """Stop the Job ``job_name`` (suspend it, keeping it as a record) and say why and when."""

    job_name: str
    why: EndReason
    at: datetime
    note: Note


TrainingAction = StartAttempt | EndAttempt


@dataclass(frozen=True)
class TrainingObservation:
    """What the cluster says about one TrainingJob at ``now``.

    ``attempts`` are its Jobs, ``pods`` their pods, ``nodes`` every node by name: a pod whose
    node is missing from ``nodes`` is on a node that is gone. ``blocked`` says why a job that
    has not started yet may not start now (a budget's BlockNewWork); None admits it.
    """

    job: TrainingJob
    attempts: tuple[JobRecord, ...]
    pods: tuple[PodRecord, ...]
    nodes: Mapping[str, NodeRecord]
    now: datetime
    generation: int | None = None
    blocked: str | None = None


@dataclass(frozen=True)
class TrainingPlan:
    """``recheck_at``: decide again then (a stop waiting for the next checkpoint)."""

    actions: tuple[TrainingAction, ...]
    status: TrainingJobStatus
    notes: tuple[Note, ...] = field(default=())
    recheck_at: datetime | None = None


def effective_spec(job: TrainingJob) -> tuple[TrainingJobSpec, GovernorDirective | None]:
    """The spec with the governor's directive (from the job's annotation) overlaid."""
    directive = read_directive(job.metadata.annotations)
    return overlay(job.spec, directive), directive


def overlay(spec: TrainingJobSpec, directive: GovernorDirective | None) -> TrainingJobSpec:
    """``spec`` as ``directive`` changes it (capacity only for checkpointed jobs: spot without
    a checkpoint would lose all work at each preemption); ``spec`` itself when None."""
    if directive is None:
        return spec
    update: dict[str, object] = {}
    if directive.capacity is not None and spec.checkpoint is not None:
        update["capacity"] = directive.capacity
    if directive.suspend:
        update["suspend"] = True
    return spec.model_copy(update=update)


def decide_training(obs: TrainingObservation) -> TrainingPlan:
    """The actions that bring the job where its spec, the governor's directive and the cluster
    say, and its new status."""
    user_suspend = obs.job.spec.suspend
    spec, directive = effective_spec(obs.job)
    if directive is not None:
        obs = replace(obs, job=obs.job.model_copy(update={"spec": spec}))
    status = obs.job.status or TrainingJobStatus()
    attempts = sorted(obs.attempts, key=lambda j: j.attempt)
    ended = {j.attempt: why for j in attempts if (why := recorded_end(j)) is not None}
    current = attempts[-1] if attempts else None
    actions: list[TrainingAction] = []

    if _refused_for_this_generation(status, obs.generation):
        return TrainingPlan((), status)
    recheck_at: datetime | None = None
    if current is not None and current.attempt not in ended and _is_active(current):
        stop = _why_stop(obs, current, ended)
        if stop is not None and stop[0] in _GOVERNED and not (user_suspend and stop[0] == SUSP):
            recheck_at = _next_checkpoint(obs, current)
            if recheck_at is not None:
                stop = None
        if stop is not None:
            why, detail = stop
            ended[current.attempt] = why
            actions.append(_end(current, why, detail, obs))
    blocked = obs.blocked if current is None and status.attempt == 0 else None
    if blocked is None and _needs_next(current, ended, spec, status):
        previous = current.attempt if current is not None else status.attempt
        actions.append(_start(previous + 1, obs, ended))
    new_status = _status(obs, attempts, ended, actions, status)
    if blocked is not None and new_status.phase == TrainingJobPhase.PENDING:
        new_status = _blocked(new_status, blocked, obs)
    elif obs.blocked is None or status.attempt or current is not None:
        new_status = _admitted(new_status, obs)
    notes = _phase_notes(status, new_status)
    return TrainingPlan(tuple(actions), new_status, notes, recheck_at)


SUSP: Final = EndReason.SUSPENDED
#: Stops the governor causes wait for a checkpoint; interruptions cannot wait.
_GOVERNED: Final = (EndReason.SUSPENDED, EndReason.RESCHEDULED)


def _next_checkpoint(obs: TrainingObservation, current: JobRecord) -> datetime | None:
    """None when stopping now loses at most the grace (just past a checkpoint, no checkpoint
    configured, or no worker running yet); else when the next checkpoint will have been written.

    Checkpoints are assumed every ``interval`` from the attempt's start, each taking
    ``writeDuration``; the grace is a tenth of the interval, between 2 s and 60 s.
    """
    checkpoint = obs.job.spec.checkpoint
    start = current.started or current.created
    running = any(p.attempt == current.attempt and p.phase == "Running" for p in obs.pods)
    if checkpoint is None or start is None or not running or obs.now <= start:
        return None
    interval = checkpoint.interval
    write = checkpoint.write_duration or timedelta(0)
    grace = min(max(interval / 10, CHECKPOINT_GRACE_MIN), CHECKPOINT_GRACE_MAX)
    since = (obs.now - start) % interval
    if write <= since <= write + grace:
        return None
    wait = write - since if since < write else interval - since + write
    return obs.now + wait


def _blocked(status: TrainingJobStatus, why: str, obs: TrainingObservation) -> TrainingJobStatus:
    blocked = status.model_copy(deep=True)
    blocked.phase = TrainingJobPhase.BLOCKED
    blocked.last_decision = f"not started: {why}"
    blocked.conditions = set_condition(
        blocked.conditions, "Admitted", False, "BudgetBlocked", why, now=obs.now,
        generation=obs.generation,
    )  # fmt: skip
    blocked.conditions = set_condition(
        blocked.conditions, "Ready", False, "Blocked", why, now=obs.now,
        generation=obs.generation,
    )  # fmt: skip
    return blocked


def _admitted(status: TrainingJobStatus, obs: TrainingObservation) -> TrainingJobStatus:
    """Admitted=True once a job that was blocked may run (absent on jobs never blocked)."""
    if condition(status.conditions, "Admitted") is None:
        return status
    admitted = status.model_copy(deep=True)
    admitted.conditions = set_condition(
        admitted.conditions, "Admitted", True, "BudgetAllows", "no budget blocks new work",
        now=obs.now, generation=obs.generation,
    )  # fmt: skip
    return admitted


def recorded_end(job: JobRecord) -> EndReason | None:
    """Why the attempt ended, if Steward stopped it or the Job failed on a node disruption.

    A Job fails with reason ``PodFailurePolicy`` on a ``DisruptionTarget`` pod condition (see the
    Job's podFailurePolicy): the pod garbage collector sets it when a node disappears.
    """
    if job.ended is not None and job.ended in EndReason.__members__.values():
        return EndReason(job.ended)
    if (
        job.failed
        and job.failed_reason == "PodFailurePolicy"
        and "DisruptionTarget" in (job.failed_message)
    ):
        return EndReason.PREEMPTED if job.capacity == CAPACITY_LABEL_SPOT else EndReason.DISRUPTED
    return None


def mark_invalid(
    status: TrainingJobStatus, message: str, *, now: datetime, generation: int | None
) -> TrainingJobStatus:
    """``status`` for a spec that was refused (``message`` names the field); nothing runs until
    the spec changes (a new generation)."""
    refused = status.model_copy(deep=True)
    refused.phase = TrainingJobPhase.FAILED
    refused.last_decision = f"spec refused: {message}"
    refused.observed_generation = generation
    conditions = set_condition(
        refused.conditions, "Valid", False, INVALID_SPEC, message, now=now, generation=generation
    )
    refused.conditions = set_condition(
        conditions, "Ready", False, INVALID_SPEC, message, now=now, generation=generation
    )
    return refused


# --- Stopping the current attempt -----------------------------------------------------------------
def _is_active(job: JobRecord) -> bool:
    return not (job.complete or job.failed)


def _why_stop(
    obs: TrainingObservation, current: JobRecord, ended: Mapping[int, EndReason]
) -> tuple[EndReason, str] | None:
    spec = obs.job.spec
    if spec.suspend:
        return EndReason.SUSPENDED, "spec.suspend is true"
    pods = [p for p in obs.pods if p.attempt == current.attempt and p.phase != "Succeeded"]
    interrupted = _interruption(pods, obs.nodes)
    if interrupted is not None:
        spot = current.capacity == CAPACITY_LABEL_SPOT
        return (EndReason.PREEMPTED if spot else EndReason.DISRUPTED), interrupted
    move = _capacity_move(spec, current, ended, obs.now)
    if move is not None:
        return EndReason.RESCHEDULED, move
    return _spot_wait_over(obs, current)


def _spot_wait_over(obs: TrainingObservation, current: JobRecord) -> tuple[EndReason, str] | None:
    """SpotWithFallback: why waiting longer for spot capacity is not worth it, if it is not."""
    spec = obs.job.spec
    if (
        current.capacity != CAPACITY_LABEL_SPOT
        or spec.capacity.type != CapacityStrategy.SPOT_WITH_FALLBACK
    ):
        return None
    # Every pod of the attempt: one that already ran (Succeeded, before the job controller
    # marks the Job Complete) had its capacity.
    waiting = not any(p.node_name for p in obs.pods if p.attempt == current.attempt)
    since = current.created or obs.now
    if waiting and obs.now - since >= spec.capacity.fallback_after:
        waited = _human(obs.now - since)
        return EndReason.SPOT_UNAVAILABLE, f"no spot capacity for {waited} (fallbackAfter)"
    if waiting and _deadline_at_risk(spec, obs.now):
        return (
            EndReason.DEADLINE_AT_RISK,
            f"deadline {spec.deadline} is less than fallbackAfter away",
        )
    return None


def _capacity_move(
    spec: TrainingJobSpec, current: JobRecord, ended: Mapping[int, EndReason], now: datetime
) -> str | None:
    on_spot = current.capacity == CAPACITY_LABEL_SPOT
    return capacity_move(spec, on_spot=on_spot, history=list(ended.values()), now=now)


def capacity_move(
    spec: TrainingJobSpec, *, on_spot: bool, history: list[EndReason], now: datetime
) -> str | None:
    """Why an attempt running on spot (``on_spot``) or on-demand should move to the other
    capacity, if it should: the spec (or the governor's directive) now asks for on-demand
    while it runs on spot, or asks for spot (and nothing in ``history`` sent it to on-demand)
    while it runs on on-demand."""
    if on_spot and spec.capacity.type == CapacityStrategy.ON_DEMAND:
        return "capacity OnDemand asked for; moving off spot at a checkpoint"
    if not on_spot and spec.capacity.type != CapacityStrategy.ON_DEMAND:
        wanted, _ = next_capacity(spec, history, now)
        if wanted == CapacityType.SPOT:
            return f"capacity {spec.capacity.type.value} asked for; moving to spot at a checkpoint"
    return None


def _interruption(pods: list[PodRecord], nodes: Mapping[str, NodeRecord]) -> str | None:
    for pod in pods:
        if pod.node_name is None:
            continue
        node = nodes.get(pod.node_name)
        if node is None:
            return f"node {pod.node_name} of pod {pod.name} is gone"
        taint = is_disrupting(list(node.taints))
        if taint is not None:
            return f"node {pod.node_name} of pod {pod.name} is tainted {taint}"
        if pod.disrupted:
            return f"pod {pod.name} is marked DisruptionTarget"
    return None


def _end(job: JobRecord, why: EndReason, detail: str, obs: TrainingObservation) -> EndAttempt:
    lost = _lost_gpu_hours(obs.job.spec, job, obs.now) if why in _INTERRUPTIONS else None
    message = f"attempt {job.attempt} stopped: {detail}"
    if lost is not None:
        message += f"; {lost:.4f} GPU-hours since the last checkpoint are lost"
    note = (
        Note("Warning", str(why), message)
        if why in _INTERRUPTIONS
        else Note("Normal", str(why), message)
    )
    return EndAttempt(job.name, why, obs.now, note)


_INTERRUPTIONS = (EndReason.PREEMPTED, EndReason.DISRUPTED)


# --- Starting the next attempt --------------------------------------------------------------------
def _needs_next(
    current: JobRecord | None,
    ended: Mapping[int, EndReason],
    spec: TrainingJobSpec,
    status: TrainingJobStatus,
) -> bool:
    if spec.suspend:
        return False
    if current is None:
        # Without Jobs, a finished job stays finished (its Jobs may have been cleaned up);
        # one that failed only because its spec was refused runs once the spec changed.
        valid = condition(status.conditions, "Valid")
        refused = valid is not None and valid.reason == INVALID_SPEC
        finished = (TrainingJobPhase.SUCCEEDED, TrainingJobPhase.FAILED)
        return refused or status.phase not in finished
    return current.attempt in ended


def _start(attempt: int, obs: TrainingObservation, ended: Mapping[int, EndReason]) -> StartAttempt:
    spec = obs.job.spec
    capacity, why = next_capacity(spec, list(ended.values()), obs.now)
    resume = attempt > 1 and spec.checkpoint is not None
    where = "spot" if capacity == CapacityType.SPOT else "on-demand"
    message = f"attempt {attempt} on {where} capacity"
    if resume and spec.checkpoint is not None:
        message += f", resuming from checkpoint {spec.checkpoint.path}"
    if why:
        message += f": {why}"
    if why and capacity == CapacityType.ON_DEMAND:
        reason = "FellBackToOnDemand"
    else:
        reason = "Resumed" if attempt > 1 else "Started"
    return StartAttempt(attempt, capacity, resume, Note("Normal", reason, message))


def next_capacity(
    spec: TrainingJobSpec, history: list[EndReason], now: datetime
) -> tuple[CapacityType, str | None]:
    """Capacity of the next attempt after attempts that ended for ``history``, and why."""
    strategy = spec.capacity.type
    if strategy == CapacityStrategy.ON_DEMAND:
        return CapacityType.ON_DEMAND, None
    if strategy == CapacityStrategy.SPOT:
        return CapacityType.SPOT, None
    preemptions = history.count(EndReason.PREEMPTED)
    if preemptions >= spec.capacity.max_preemptions:
        limit = spec.capacity.max_preemptions
        return CapacityType.ON_DEMAND, f"{preemptions} preemption(s) reached maxPreemptions {limit}"
    if EndReason.SPOT_UNAVAILABLE in history:
        return CapacityType.ON_DEMAND, "spot capacity did not arrive within fallbackAfter"
    if EndReason.DEADLINE_AT_RISK in history or _deadline_at_risk(spec, now):
        return CapacityType.ON_DEMAND, f"deadline {spec.deadline} is at risk"
    return CapacityType.SPOT, None


def _deadline_at_risk(spec: TrainingJobSpec, now: datetime) -> bool:
    return spec.deadline is not None and spec.deadline - now < spec.capacity.fallback_after


# --- Status ---------------------------------------------------------------------------------------
def _status(
    obs: TrainingObservation,
    attempts: list[JobRecord],
    ended: Mapping[int, EndReason],
    actions: list[TrainingAction],
    previous: TrainingJobStatus,
) -> TrainingJobStatus:
    spec = obs.job.spec
    starting = next((a for a in actions if isinstance(a, StartAttempt)), None)
    current = attempts[-1] if attempts else None
    status = previous.model_copy(deep=True)
    if starting is not None:
        status.attempt = starting.attempt
        status.job_name = f"{obs.job.metadata.name}-{starting.attempt}"
        status.capacity_type = starting.capacity
    elif current is not None:
        status.attempt = current.attempt
        status.job_name = current.name
        status.capacity_type = _capacity_of(current)
    reasons = list(ended.values())
    status.preemptions = reasons.count(EndReason.PREEMPTED)
    status.interruptions = reasons.count(EndReason.DISRUPTED)
    status.restarts = max(status.attempt - 1, 0)
    stopped_at = {a.job_name: a.at for a in actions if isinstance(a, EndAttempt)}
    status.lost_gpu_hours = sum(
        (
            _lost_gpu_hours(spec, j, stopped_at.get(j.name, obs.now))
            for j in attempts
            if ended.get(j.attempt) in _INTERRUPTIONS
        ),
        Decimal(0),
    )
    first = attempts[0] if attempts else None
    if status.start_time is None and first is not None:
        status.start_time = first.started or first.created
    status.phase = _phase(obs, current, ended, starting)
    if status.phase == TrainingJobPhase.SUCCEEDED and current is not None:
        status.completion_time = current.completed_at or obs.now
    if actions:
        status.last_decision = actions[-1].note.message
    status.observed_generation = obs.generation
    ready = status.phase in (TrainingJobPhase.RUNNING, TrainingJobPhase.SUCCEEDED)
    conditions = set_condition(
        status.conditions, "Valid", True, "SpecAccepted", "", now=obs.now,
        generation=obs.generation,
    )  # fmt: skip
    status.conditions = set_condition(
        conditions, "Ready", ready, str(status.phase), status.last_decision or "",
        now=obs.now, generation=obs.generation,
    )  # fmt: skip
    return status


def _phase(
    obs: TrainingObservation,
    current: JobRecord | None,
    ended: Mapping[int, EndReason],
    starting: StartAttempt | None,
) -> TrainingJobPhase:
    if starting is not None:
        return TrainingJobPhase.RESTARTING if starting.attempt > 1 else TrainingJobPhase.PENDING
    if current is None:
        previous = obs.job.status.phase if obs.job.status else TrainingJobPhase.PENDING
        return TrainingJobPhase.SUSPENDED if obs.job.spec.suspend else previous
    return _attempt_phase(obs, current, ended.get(current.attempt))


def _attempt_phase(
    obs: TrainingObservation, current: JobRecord, end: EndReason | None
) -> TrainingJobPhase:
    if current.complete:
        return TrainingJobPhase.SUCCEEDED
    if end is not None:
        return (
            TrainingJobPhase.SUSPENDED
            if end == EndReason.SUSPENDED
            else TrainingJobPhase.RESTARTING
        )
    if current.failed:
        return TrainingJobPhase.FAILED
    running = any(p.attempt == current.attempt and p.phase == "Running" for p in obs.pods)
    return TrainingJobPhase.RUNNING if running else TrainingJobPhase.PENDING


def _phase_notes(old: TrainingJobStatus, new: TrainingJobStatus) -> tuple[Note, ...]:
    if old.phase == new.phase:
        return ()
    if new.phase == TrainingJobPhase.SUCCEEDED:
        message = (
            f"completed after {new.attempt} attempt(s), {new.preemptions} preemption(s), "
            f"{new.lost_gpu_hours:.4f} GPU-hours lost"
        )
        return (Note("Normal", "Succeeded", message),)
    if new.phase == TrainingJobPhase.FAILED:
        return (Note("Warning", "Failed", f"attempt {new.attempt} failed"),)
    if new.phase == TrainingJobPhase.BLOCKED:
        return (Note("Warning", "Blocked", new.last_decision or "blocked by a budget"),)
    return ()


def _capacity_of(job: JobRecord) -> CapacityType:
    return CapacityType.SPOT if job.capacity == CAPACITY_LABEL_SPOT else CapacityType.ON_DEMAND


def _lost_gpu_hours(spec: TrainingJobSpec, job: JobRecord, default_end: datetime) -> Decimal:
    start = job.started or job.created
    end = job.ended_at or job.failed_at or default_end
    if start is None or end <= start:
        return Decimal(0)
    run = end - start
    if spec.checkpoint is not None:
        run = run % spec.checkpoint.interval
    gpus = spec.workers * spec.gpus_per_worker
    seconds = Decimal(run.total_seconds()).quantize(Decimal("0.001"))
    return (seconds * gpus / SECONDS_PER_HOUR).quantize(Decimal("0.0001"))


def _refused_for_this_generation(status: TrainingJobStatus, generation: int | None) -> bool:
    valid = condition(status.conditions, "Valid")
    return (
        valid is not None
        and valid.reason == INVALID_SPEC
        and generation is not None
        and valid.observed_generation == generation
    )


def _human(delta: timedelta) -> str:
    return f"{delta.total_seconds():.0f}s"
