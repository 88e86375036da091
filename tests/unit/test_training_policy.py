"""The TrainingJob lifecycle decisions, with the cluster and the clock as plain inputs."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from steward.api.constants import ANNOTATION_GOVERNOR
from steward.api.directive import GovernorDirective
from steward.api.v1alpha1.common import CapacityType
from steward.api.v1alpha1.trainingjob import TrainingJob, TrainingJobPhase
from steward.policy.training import (
    EndAttempt,
    EndReason,
    StartAttempt,
    TrainingObservation,
    decide_training,
    mark_invalid,
    recorded_end,
)
from steward.snapshot import JobRecord, NodeRecord, PodRecord

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def _job(**capacity: Any) -> TrainingJob:
    return TrainingJob.model_validate(
        {
            "metadata": {"name": "ft", "namespace": "ml"},
            "spec": {
                "workers": 2,
                "gpusPerWorker": 4,
                "checkpoint": {"path": "/ckpt", "interval": "10m"},
                "capacity": {"type": "SpotWithFallback", "maxPreemptions": 2, **capacity},
                "template": {"spec": {"containers": [{"name": "t", "image": "i"}]}},
            },
        }
    )


def _attempt(n: int, capacity: str = "spot", **fields: Any) -> JobRecord:
    base = JobRecord(
        name=f"ft-{n}", attempt=n, capacity=capacity, created=NOW - timedelta(minutes=30),
        started=NOW - timedelta(minutes=25), suspended=False, complete=False, failed=False,
        failed_reason=None, failed_message="", failed_at=None, completed_at=None, ended=None,
        ended_at=None,
    )  # fmt: skip
    return replace(base, **fields)


def _pod(attempt: int, node: str | None, phase: str = "Running", **fields: Any) -> PodRecord:
    base = PodRecord(
        name=f"ft-{attempt}-x", node_name=node, phase=phase, ready=phase == "Running",
        unschedulable=False, unschedulable_since=None, disrupted=False, attempt=attempt,
        capacity="spot", share=None, created=NOW, started=NOW, deleting=False,
    )  # fmt: skip
    return replace(base, **fields)


def _node(name: str, *taints: str) -> NodeRecord:
    return NodeRecord(name, {}, tuple({"key": t, "effect": "NoSchedule"} for t in taints))


def _decide(
    job: TrainingJob,
    attempts: list[JobRecord],
    pods: list[PodRecord],
    nodes: list[NodeRecord],
    now: datetime = NOW,
) -> Any:
    observation = TrainingObservation(
        job, tuple(attempts), tuple(pods), {n.name: n for n in nodes}, now, generation=1
    )
    return decide_training(observation)


def test_a_new_spot_job_starts_its_first_attempt_on_spot() -> None:
    plan = _decide(_job(), [], [], [])
    [start] = plan.actions
    assert start == StartAttempt(1, CapacityType.SPOT, False, start.note)
    assert plan.status.phase == TrainingJobPhase.PENDING
    assert plan.status.job_name == "ft-1"


def test_a_running_attempt_on_a_healthy_node_is_left_alone() -> None:
    plan = _decide(_job(), [_attempt(1)], [_pod(1, "n1")], [_node("n1")])
    assert plan.actions == ()
    assert plan.status.phase == TrainingJobPhase.RUNNING


@pytest.mark.parametrize(
    ("nodes", "detail"),
    [([], "is gone"), ([_node("n1", "karpenter.sh/disrupted")], "tainted karpenter.sh/disrupted")],
)
def test_a_lost_or_disrupted_spot_node_preempts_and_resumes(
    nodes: list[NodeRecord], detail: str
) -> None:
    plan = _decide(_job(), [_attempt(1)], [_pod(1, "n1")], nodes)
    end, start = plan.actions
    assert isinstance(end, EndAttempt)
    assert end.why == EndReason.PREEMPTED
    assert detail in end.note.message
    assert start == StartAttempt(2, CapacityType.SPOT, True, start.note)
    assert plan.status.preemptions == 1
    assert plan.status.restarts == 1
    assert plan.status.phase == TrainingJobPhase.RESTARTING


def test_lost_gpu_hours_are_the_work_since_the_last_checkpoint() -> None:
    # Started 25 minutes ago with a 10-minute interval: 5 minutes lost on 2 x 4 GPUs.
    plan = _decide(_job(), [_attempt(1)], [_pod(1, "gone")], [])
    assert plan.status.lost_gpu_hours == Decimal("0.6667")


def test_after_max_preemptions_the_next_attempt_is_on_demand() -> None:
    attempts = [_attempt(1, ended="Preempted", ended_at=NOW), _attempt(2)]
    plan = _decide(_job(), attempts, [_pod(2, "gone")], [])
    start = plan.actions[-1]
    assert isinstance(start, StartAttempt)
    assert start.capacity == CapacityType.ON_DEMAND
    assert start.note.reason == "FellBackToOnDemand"
    assert "maxPreemptions 2" in start.note.message
    assert plan.status.preemptions == 2


def test_spot_only_jobs_never_fall_back() -> None:
    attempts = [_attempt(n, ended="Preempted", ended_at=NOW) for n in (1, 2, 3)]
    plan = _decide(_job(type="Spot"), attempts, [], [])
    [start] = plan.actions
    assert isinstance(start, StartAttempt)
    assert start.capacity == CapacityType.SPOT


def test_waiting_too_long_for_spot_falls_back_without_counting_a_preemption() -> None:
    waiting = _pod(1, None, "Pending", unschedulable=True)
    early = _decide(_job(fallbackAfter="1h"), [_attempt(1)], [waiting], [])
    assert early.actions == ()
    late = _decide(_job(fallbackAfter="15m"), [_attempt(1)], [waiting], [])
    end, start = late.actions
    assert isinstance(end, EndAttempt)
    assert end.why == EndReason.SPOT_UNAVAILABLE
    assert isinstance(start, StartAttempt)
    assert start.capacity == CapacityType.ON_DEMAND
    assert late.status.preemptions == 0


def test_a_finished_pod_is_not_mistaken_for_a_wait_for_spot() -> None:
    # The pod Succeeded; the job controller has not marked the Job Complete yet. Found by
    # `steward demo`: the attempt was ended as SpotUnavailable and run again on on-demand.
    done = _pod(1, "n1", "Succeeded", ready=False)
    plan = _decide(_job(fallbackAfter="15m"), [_attempt(1)], [done], [_node("n1")])
    assert not any(isinstance(a, EndAttempt) for a in plan.actions)


def test_a_deadline_at_risk_moves_a_waiting_job_to_on_demand() -> None:
    job = _job(fallbackAfter="1h")
    job.spec.deadline = NOW + timedelta(minutes=20)
    plan = _decide(job, [_attempt(1)], [_pod(1, None, "Pending")], [])
    end, start = plan.actions
    assert isinstance(end, EndAttempt)
    assert end.why == EndReason.DEADLINE_AT_RISK
    assert isinstance(start, StartAttempt)
    assert start.capacity == CapacityType.ON_DEMAND


def test_a_job_failed_by_its_disruption_policy_counts_as_a_preemption() -> None:
    failed = _attempt(
        1, failed=True, failed_reason="PodFailurePolicy", failed_at=NOW,
        failed_message="Pod ml/ft-1-x has condition DisruptionTarget matching FailJob rule",
    )  # fmt: skip
    assert recorded_end(failed) == EndReason.PREEMPTED
    plan = _decide(_job(), [failed], [], [])
    assert [type(a) for a in plan.actions] == [StartAttempt]
    assert plan.status.preemptions == 1


def test_a_workload_failure_fails_the_job_without_retrying() -> None:
    failed = _attempt(1, failed=True, failed_reason="BackoffLimitExceeded", failed_at=NOW)
    plan = _decide(_job(), [failed], [], [])
    assert plan.actions == ()
    assert plan.status.phase == TrainingJobPhase.FAILED
    assert [n.reason for n in plan.notes] == ["Failed"]


def test_completion_succeeds_once_and_is_stable() -> None:
    done = _attempt(1, complete=True, completed_at=NOW)
    plan = _decide(_job(), [done], [], [])
    assert plan.status.phase == TrainingJobPhase.SUCCEEDED
    assert [n.reason for n in plan.notes] == ["Succeeded"]
    job = _job()
    job.status = plan.status
    again = _decide(job, [done], [], [], now=NOW + timedelta(hours=1))
    assert again.actions == ()
    assert again.notes == ()
    assert again.status == plan.status  # nothing to patch: no churn on resync


def test_the_plan_after_a_restart_repeats_nothing() -> None:
    # The operator died after creating attempt 2 but before writing status.
    attempts = [_attempt(1, ended="Preempted", ended_at=NOW), _attempt(2)]
    plan = _decide(_job(), attempts, [_pod(2, "n2")], [_node("n2")])
    assert plan.actions == ()
    assert (plan.status.attempt, plan.status.preemptions) == (2, 1)


def test_suspend_stops_the_attempt_and_resume_starts_the_next() -> None:
    job = _job()
    job.spec.suspend = True
    plan = _decide(job, [_attempt(1)], [_pod(1, "n1")], [_node("n1")])
    [end] = plan.actions
    assert isinstance(end, EndAttempt)
    assert end.why == EndReason.SUSPENDED
    suspended = _attempt(1, ended="Suspended", ended_at=NOW)
    assert _decide(job, [suspended], [], []).status.phase == TrainingJobPhase.SUSPENDED
    [start] = _decide(_job(), [suspended], [], []).actions
    assert isinstance(start, StartAttempt)
    assert start.attempt == 2
    assert start.resume


def test_a_refused_spec_is_not_retried_until_it_changes() -> None:
    job = _job()
    job.status = mark_invalid(
        decide_training(TrainingObservation(job, (), (), {}, NOW, 1)).status,
        "spec.template.spec.containers[0].image: Required value",
        now=NOW,
        generation=1,
    )
    assert _decide(job, [], [], []).actions == ()
    changed = TrainingObservation(job, (), (), {}, NOW, generation=2)
    assert len(decide_training(changed).actions) == 1


def _governed(directive: GovernorDirective) -> TrainingJob:
    job = _job()
    job.metadata.annotations = {ANNOTATION_GOVERNOR: directive.to_annotation()}
    return job


def test_a_governor_suspend_waits_for_the_next_checkpoint() -> None:
    # Checkpoints every 10 min from the attempt's start (25 min ago): the last at -5 min.
    job = _governed(GovernorDirective(policy="p", suspend=True, since=NOW))
    waiting = _decide(job, [_attempt(1)], [_pod(1, "n1")], [_node("n1")])
    assert waiting.actions == ()
    assert waiting.recheck_at == NOW + timedelta(minutes=5)
    # Just after that checkpoint (within the grace, a tenth of the interval): stop now.
    later = NOW + timedelta(minutes=5, seconds=30)
    [end] = _decide(job, [_attempt(1)], [_pod(1, "n1")], [_node("n1")], later).actions
    assert isinstance(end, EndAttempt)
    assert end.why == EndReason.SUSPENDED
    # Past the grace, it waits for the one after.
    missed = NOW + timedelta(minutes=6, seconds=30)
    plan = _decide(job, [_attempt(1)], [_pod(1, "n1")], [_node("n1")], missed)
    assert plan.actions == ()
    assert plan.recheck_at == NOW + timedelta(minutes=15)


def test_a_users_own_suspend_and_a_pending_attempt_stop_at_once() -> None:
    job = _governed(GovernorDirective(policy="p", suspend=True, since=NOW))
    job.spec.suspend = True
    [end] = _decide(job, [_attempt(1)], [_pod(1, "n1")], [_node("n1")]).actions
    assert isinstance(end, EndAttempt)
    governed = _governed(GovernorDirective(policy="p", suspend=True, since=NOW))
    pending = [_pod(1, None, phase="Pending")]
    [end] = _decide(governed, [_attempt(1)], pending, [_node("n1")]).actions
    assert isinstance(end, EndAttempt)  # nothing running, nothing to lose
