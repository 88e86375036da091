"""A CompressionJob's life, pure: start the runner's Job, follow it, read its result (the
container's termination message), fill the status, and decide whether the target
InferenceService is promoted to the chosen variant.

Promotion needs all of: the gate passed (a chosen variant and its artifact), the job's
``autoPromote``, and the target service's own ``spec.compression.autoPromote``. A failed gate
leaves the service untouched, with every variant's reasons in the status.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from pydantic import ValidationError

from steward.api.compression_result import RunnerResult
from steward.api.schema import first_error
from steward.api.v1alpha1.compressionjob import (
    CompressionJob,
    CompressionJobStatus,
    CompressionPhase,
)
from steward.api.v1alpha1.inferenceservice import ActiveModel, InferenceService
from steward.policy.conditions import set_condition
from steward.policy.notes import Note

Raw = dict[str, Any]
#: How long a finished runner Job may go without its result before the job fails.
RESULT_GRACE: Final = timedelta(minutes=2)
DONE: Final = (CompressionPhase.SUCCEEDED, CompressionPhase.FAILED)


@dataclass(frozen=True)
class RunnerObservation:
    """What the controller saw: the CompressionJob, its runner Job (``None`` before it exists),
    the runner container's termination message, and the target service."""

    job: CompressionJob
    runner: Raw | None
    message: str | None
    service: InferenceService | None
    now: datetime
    generation: int | None = None


@dataclass(frozen=True)
class CompressionPlan:
    """Create the runner Job or not; the status to write; the promotion to apply; the Events."""

    create_runner: bool
    status: CompressionJobStatus
    promote: ActiveModel | None = None
    notes: tuple[Note, ...] = ()


def runner_name(job_name: str) -> str:
    return f"{job_name}-runner"


def decide_compression(obs: RunnerObservation) -> CompressionPlan:
    """The next step of ``obs.job``; repeating it on the same observation changes nothing."""
    status = (obs.job.status or CompressionJobStatus()).model_copy(deep=True)
    if status.phase in DONE:
        return CompressionPlan(False, status)
    status.job_name = runner_name(obs.job.metadata.name or "")
    if obs.runner is None:
        status.phase = CompressionPhase.PENDING
        note = Note("Normal", "RunnerStarted", f"runner Job {status.job_name} created")
        return CompressionPlan(True, status, notes=(note,))
    return _follow(status, obs, obs.runner)


def _follow(status: CompressionJobStatus, obs: RunnerObservation, runner: Raw) -> CompressionPlan:
    """The runner Job exists: running, failed, or finished with (or without) its result."""
    finished, failed = _finished(runner)
    status.start_time = status.start_time or _time(runner, "startTime") or obs.now
    if failed is not None:
        return _fail(status, obs, "RunnerFailed", f"runner Job {status.job_name} failed: {failed}")
    completed = _time(runner, "completionTime") or obs.now
    if finished and obs.message is not None:
        return _read(status, obs, completed)
    if finished and obs.now - completed > RESULT_GRACE:
        return _fail(status, obs, "NoResult", "the runner finished without a result")
    status.phase = CompressionPhase.RUNNING
    return CompressionPlan(False, status)


def _read(status: CompressionJobStatus, obs: RunnerObservation, completed: datetime
          ) -> CompressionPlan:  # fmt: skip
    try:
        result = RunnerResult.model_validate_json(obs.message or "")
    except ValidationError as error:
        return _fail(status, obs, "ResultUnreadable", f"runner result: {first_error(error)}")
    status.completion_time = completed
    return _succeeded(status, result, obs)


def _succeeded(
    status: CompressionJobStatus, result: RunnerResult, obs: RunnerObservation
) -> CompressionPlan:
    status.phase = CompressionPhase.SUCCEEDED
    status.variants = result.variants
    status.chosen_variant = result.chosen_variant
    status.artifact_uri = result.artifact_uri
    status.accepted = result.accepted and result.chosen_variant is not None
    passed = sum(1 for v in result.variants if v.passed and v.method is not None)
    if status.accepted:
        gate = f"gate passed: {passed} variant(s); chose {result.chosen_variant}"
    else:
        gate = "gate failed: no variant passed; " + _failures(result)
    notes = [Note("Normal" if status.accepted else "Warning",
                  "GatePassed" if status.accepted else "GateFailed", gate)]  # fmt: skip
    promote, why = _promotion(status, obs)
    status.promoted = promote is not None
    status.conditions = set_condition(
        status.conditions, "Accepted", bool(status.accepted),
        "GatePassed" if status.accepted else "GateFailed", gate[:1024],
        now=obs.now, generation=obs.generation,
    )  # fmt: skip
    status.conditions = set_condition(
        status.conditions, "Promoted", promote is not None,
        "Promoted" if promote else "NotPromoted", why, now=obs.now, generation=obs.generation,
    )  # fmt: skip
    if promote is not None:
        notes.append(Note("Normal", "Promoted", why))
    return CompressionPlan(False, status, promote, tuple(notes))


def _promotion(
    status: CompressionJobStatus, obs: RunnerObservation
) -> tuple[ActiveModel | None, str]:
    spec, service = obs.job.spec, obs.service
    if not status.accepted or status.artifact_uri is None:
        return None, "nothing to promote: the gate did not pass"
    if spec.target is None:
        return None, "no target InferenceService"
    if not spec.auto_promote:
        return None, "autoPromote is off for this job"
    if service is None:
        return None, f"target InferenceService {spec.target} not found"
    preferences = service.spec.compression
    if preferences is None or not preferences.auto_promote:
        return None, f"InferenceService {spec.target} does not allow auto-promotion"
    model = ActiveModel(variant=status.chosen_variant or "", storage_uri=status.artifact_uri,
                        compression_job=obs.job.metadata.name, since=obs.now)  # fmt: skip
    why = (f"InferenceService {spec.target} now serves {model.variant} from "
           f"{model.storage_uri}")  # fmt: skip
    return model, why


def _failures(result: RunnerResult) -> str:
    parts = [f"{v.name}: {v.reasons[0]}" for v in result.variants if v.reasons]
    return "; ".join(parts)[:900]


def _fail(
    status: CompressionJobStatus, obs: RunnerObservation, reason: str, message: str
) -> CompressionPlan:
    status.phase = CompressionPhase.FAILED
    status.completion_time = obs.now
    status.conditions = set_condition(status.conditions, "Accepted", False, reason, message,
                                      now=obs.now, generation=obs.generation)  # fmt: skip
    return CompressionPlan(False, status, notes=(Note("Warning", reason, message),))


def _finished(runner: Raw) -> tuple[bool, str | None]:
    """Whether the runner Job completed, and why it failed if it did."""
    for condition in (runner.get("status") or {}).get("conditions") or []:
        if condition.get("status") != "True":
            continue
        if condition.get("type") == "Complete":
            return True, None
        if condition.get("type") == "Failed":
            return True, str(condition.get("message") or condition.get("reason") or "failed")
    return False, None


def _time(runner: Raw, field: str) -> datetime | None:
    text = (runner.get("status") or {}).get(field)
    return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None
