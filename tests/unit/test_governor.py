"""The governor's pure decisions: the ladder per workload, reversal, modes, safety properties."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from steward.api.directive import GovernorAction, GovernorDirective, read_directive
from steward.api.v1alpha1.budget import Budget, BudgetAction
from steward.api.v1alpha1.common import PolicyMode
from steward.api.v1alpha1.costpolicy import CostPolicy
from steward.api.v1alpha1.inferenceservice import InferenceService
from steward.api.v1alpha1.trainingjob import CapacityStrategy, TrainingJob
from steward.cost.catalog import GPUHourPrices
from steward.cost.usage import WorkloadRef
from steward.policy.governor import (
    Plan,
    Snapshot,
    SpotEconomics,
    WorkloadView,
    admission,
    decide,
    spot_savings_percent,
)
from steward.policy.scope import WorkloadFacts
from steward.policy.serving import effective_scale
from steward.policy.training import effective_spec

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
PRICES = {None: GPUHourPrices(Decimal(10), Decimal(4), "test catalog")}
ALL = [a.value for a in BudgetAction]


def _policy(mode: str = "Enforce", name: str = "p", priority: int = 0, **spec: Any) -> CostPolicy:
    body = {"mode": mode, "priority": priority, "selector": {"namespaces": ["team"]}}
    body["budgetActions"] = {"cooldown": "0s"}
    return CostPolicy.model_validate({"metadata": {"name": name}, "spec": body | spec})


def _budget(actions: list[str], *, stale: bool = False, name: str = "b") -> Budget:
    conditions = []
    if stale:
        conditions.append({
            "type": "DataStale", "status": "True", "reason": "DataStale", "message": "down",
            "lastTransitionTime": NOW.isoformat(),
        })  # fmt: skip
    return Budget.model_validate({
        "metadata": {"name": name},
        "spec": {
            "scope": {"namespaces": ["team"]},
            "limits": {"usd": 100},
            "thresholds": [{"percent": 50, "actions": ["Notify"]}],
        },
        "status": {"state": "Exceeded", "utilizationPercent": 120, "activeActions": actions,
                   "conditions": conditions},
    })  # fmt: skip


def _job(
    name: str = "j",
    *,
    priority: str = "Low",
    checkpoint: bool = True,
    attempt: int = 1,
    capacity: str = "OnDemand",
    directive: GovernorDirective | None = None,
) -> TrainingJob:
    spec: dict[str, Any] = {
        "template": {"spec": {"containers": [{"name": "c", "image": "i"}]}},
        "priority": priority,
        "gpusPerWorker": 2,
        "capacity": {"type": capacity},
    }
    if checkpoint:
        spec["checkpoint"] = {"path": "/ckpt", "interval": "10m"}
    annotations = {"steward.ai/governor": directive.to_annotation()} if directive else {}
    return TrainingJob.model_validate({
        "metadata": {"name": name, "namespace": "team", "annotations": annotations},
        "spec": spec,
        "status": {"attempt": attempt, "phase": "Running" if attempt else "Pending"},
    })  # fmt: skip


def _service(replicas: int = 3, minimum: int = 1) -> InferenceService:
    return InferenceService.model_validate({
        "metadata": {"name": "s", "namespace": "team"},
        "spec": {
            "predictor": {
                "model": {"modelFormat": {"name": "pytorch"}, "storageUri": "pvc://m/x"},
                "container": {"image": "server:1"},
                "minReplicas": minimum, "maxReplicas": 5, "replicas": replicas,
            },
            "capacity": {"onDemandBase": minimum},
        },
    })  # fmt: skip


def _view(obj: TrainingJob | InferenceService) -> WorkloadView:
    ref = WorkloadRef(obj.kind, obj.metadata.namespace or "", obj.metadata.name or "")
    directive = read_directive(obj.metadata.annotations)
    if isinstance(obj, TrainingJob):
        return WorkloadView(WorkloadFacts(ref), training=obj, directive=directive)
    return WorkloadView(WorkloadFacts(ref), serving=obj, directive=directive)


def _decide(
    objects: list[TrainingJob | InferenceService],
    budgets: list[Budget],
    policies: list[CostPolicy],
    now: datetime = NOW,
) -> Plan:
    snapshot = Snapshot(tuple(budgets), tuple(_view(o) for o in objects), PRICES)
    return decide(snapshot, policies, now)


def test_the_full_ladder_sets_each_workloads_directive_with_reasons() -> None:
    low, high, fresh = _job("low"), _job("high", priority="High"), _job("new", attempt=0)
    plan = _decide([low, high, fresh, _service()], [_budget(ALL)], [_policy()])
    by_name = {d.ref.name: d for d in plan.decisions}
    low_directive = by_name["low"].directive
    assert low_directive is not None
    assert low_directive.actions == [GovernorAction.SHIFT_TO_SPOT, GovernorAction.SUSPEND]
    assert low_directive.capacity is not None
    assert low_directive.capacity.type == CapacityStrategy.SPOT_WITH_FALLBACK
    assert low_directive.suspend
    assert any("Budget b Exceeded at 120.0%" in r for r in low_directive.reasons)
    # High priority: neither moved to spot (not in the default priorities) nor suspended.
    assert "high" not in by_name
    new_directive = by_name["new"].directive
    assert new_directive is not None
    assert GovernorAction.BLOCK in new_directive.actions
    service = by_name["s"].directive
    assert service is not None
    assert (service.replicas, service.max_spot_percent) == (1, 50)  # min 1, base 1
    assert plan.savings_usd_per_hour > 0


def test_a_period_reset_removes_every_directive() -> None:
    applied = _decide([_job(), _service()], [_budget(ALL)], [_policy()])
    jobs = [
        _job(directive=applied.decisions[1].directive),
        _service().model_copy(
            update={
                "metadata": _service().metadata.model_copy(
                    update={
                        "annotations": {
                            "steward.ai/governor": applied.decisions[0].directive.to_annotation()  # type: ignore[union-attr]
                        }
                    }
                )
            }
        ),
    ]
    reset = _decide(jobs, [_budget([])], [_policy()], NOW + timedelta(hours=1))
    assert [d.directive for d in reset.decisions] == [None, None]
    assert {a for d in reset.decisions for a in d.removed} >= {
        GovernorAction.SUSPEND, GovernorAction.SCALE_TO_MIN
    }  # fmt: skip


def test_an_applied_directive_is_not_applied_again() -> None:
    first = _decide([_job()], [_budget(ALL)], [_policy()])
    again = _decide([_job(directive=first.decisions[0].directive)], [_budget(ALL)], [_policy()])
    assert again.decisions == ()


def test_cooldown_defers_a_change() -> None:
    directive = GovernorDirective(
        policy="p", actions=[GovernorAction.SUSPEND], suspend=True, since=NOW
    )
    policy = _policy(budgetActions={"cooldown": "10m"})
    plan = _decide([_job(directive=directive)], [_budget([])], [policy], NOW + timedelta(minutes=1))
    assert plan.decisions == ()
    assert "cooldown" in plan.deferred[0].reason


def test_rate_limit_takes_the_strongest_first() -> None:
    jobs = [_job("a", attempt=0), _job("b")]
    policy = _policy(budgetActions={"cooldown": "0s", "maxActionsPerCycle": 1})
    plan = _decide(jobs, [_budget(ALL)], [policy])
    assert [d.ref.name for d in plan.decisions] == ["a"]  # BlockNewWork outranks the others
    assert plan.deferred[0].ref.name == "b"


def test_the_highest_priority_policy_governs_and_off_selects_nothing() -> None:
    policies = [
        _policy("DryRun", name="z-dry", priority=5),
        _policy(name="a-enforce", priority=1),
        _policy("Off", name="off", priority=9),
    ]
    plan = _decide([_job()], [_budget(ALL)], policies)
    assert (plan.decisions[0].policy, plan.decisions[0].mode) == ("z-dry", PolicyMode.DRY_RUN)


def test_admission_blocks_new_work_under_enforce_and_records_it_under_dry_run() -> None:
    facts = WorkloadFacts(WorkloadRef("TrainingJob", "team", "new"))
    budget = _budget(["BlockNewWork"])
    priority = _job().spec.priority
    enforced = admission(facts, priority, [budget], [_policy()], NOW)
    assert enforced is not None
    assert enforced.mode == PolicyMode.ENFORCE
    assert enforced.added == (GovernorAction.BLOCK,)
    assert "BlockNewWork in force" in enforced.summary
    dry = admission(facts, priority, [budget], [_policy("DryRun")], NOW)
    assert dry is not None
    assert dry.mode == PolicyMode.DRY_RUN
    assert admission(facts, priority, [_budget([])], [_policy()], NOW) is None
    assert admission(facts, priority, [budget], [_policy("Off")], NOW) is None
    assert admission(facts, priority, [budget], [], NOW) is None


def test_directives_overlay_the_specs_without_editing_them() -> None:
    plan = _decide([_job(), _service()], [_budget(ALL)], [_policy()])
    job = _job(directive=plan.decisions[1].directive)
    spec, directive = effective_spec(job)
    assert directive is not None
    assert spec.suspend
    assert spec.capacity.type == CapacityStrategy.SPOT_WITH_FALLBACK
    assert not job.spec.suspend
    assert job.spec.capacity.type == CapacityStrategy.ON_DEMAND
    service = _service()
    directive_text = plan.decisions[0].directive.to_annotation()  # type: ignore[union-attr]
    service.metadata.annotations["steward.ai/governor"] = directive_text
    assert effective_scale(service) == (1, 50)


def test_spot_savings_count_checkpoint_overhead_and_preemption_loss() -> None:
    prices = GPUHourPrices(Decimal(10), Decimal(4), "x")
    economics = SpotEconomics(preemptions_per_hour=Decimal(1), restart=timedelta(minutes=6))
    # 4 x (1 + 0.1 overhead + 1 x 1h/2 + 1 x 0.1h) = 4 x 1.7 = 6.8 -> 32 % saved.
    saving = spot_savings_percent(prices, timedelta(hours=1), timedelta(minutes=6), economics)
    assert saving == Decimal(32)


# --- Properties over generated snapshots ----------------------------------------------------------
jobs = st.builds(
    _job,
    name=st.sampled_from(["a", "b", "c", "d"]),
    priority=st.sampled_from(["Low", "Normal", "High", "Critical"]),
    checkpoint=st.booleans(),
    attempt=st.integers(0, 3),
    capacity=st.just("OnDemand"),
)
services = st.builds(_service, replicas=st.integers(1, 5), minimum=st.integers(0, 1))
budgets = st.builds(
    _budget, st.lists(st.sampled_from(ALL), unique=True), stale=st.booleans(),
    name=st.sampled_from(["b1", "b2"]),
)  # fmt: skip
policies = st.builds(
    _policy, st.sampled_from(["Enforce", "DryRun", "Off"]), name=st.sampled_from(["p", "q"]),
    priority=st.integers(0, 3),
)  # fmt: skip
snapshots = st.tuples(
    st.lists(jobs, max_size=4, unique_by=lambda j: j.metadata.name),
    st.lists(services, max_size=1),
    st.lists(budgets, max_size=2, unique_by=lambda b: b.metadata.name),
    st.lists(policies, max_size=2, unique_by=lambda p: p.metadata.name),
)


@settings(max_examples=150, deadline=None)
@given(snapshots)
def test_decide_is_safe_and_deterministic(case: Any) -> None:
    training, serving, budget_list, policy_list = case
    plan = _decide(training + serving, budget_list, policy_list)
    assert plan == _decide(training + serving, budget_list, policy_list)
    stale = any(b.status and b.status.conditions for b in budget_list)
    for decision in plan.decisions:
        directive = decision.directive
        if stale:  # nothing is enforced (or reversed) on stale data
            raise AssertionError(f"decided on stale data: {decision}")
        if directive is None:
            continue
        obj = next(o for o in training + serving if o.metadata.name == decision.ref.name)
        if isinstance(obj, InferenceService) and directive.replicas is not None:
            assert directive.replicas >= obj.spec.predictor.min_replicas
        if isinstance(obj, TrainingJob) and directive.capacity is not None:
            assert obj.spec.checkpoint is not None  # never non-interruptible work to spot
        if isinstance(obj, TrainingJob) and directive.suspend:
            assert obj.spec.checkpoint is not None
