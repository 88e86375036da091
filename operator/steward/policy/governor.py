"""The governor's decisions: ``decide(snapshot, policies, now) -> Plan``. Pure and deterministic.

For every managed workload the *governing* policy is the one selecting it with the highest
``priority`` (ties: the name that sorts first); policies in mode Off select nothing, and a
workload no policy governs gets no directive (a budget asks, a policy decides how). The
governor's whole effect on a workload is one :class:`GovernorDirective`; each cycle the desired
directive is computed from scratch and compared with the one on the object, so a period reset
(the budget's actions gone) reverses everything by removing the directive.

What a directive holds, per workload:

- **Spot shift** (the policy's spot rules, or the budget action ShiftToSpot with the default
  rules). Training moves to ``SpotWithFallback`` when it checkpoints at least every
  ``maxCheckpointInterval``, its priority is listed, its spec asks for on-demand, and spot is
  expected to save at least ``minSavingsPercent``; the training controller then brings it back to
  on-demand after ``maxPreemptions`` or ``fallbackAfter`` without capacity, or a deadline at risk.
  Serving replicas above the on-demand base go to spot up to ``maxSpotPercent``.
- **ScaleInferenceToMin**: desired replicas become ``minReplicas``, never lower.
- **SuspendLowPriority**: checkpointed training of the listed priorities stops at its next
  checkpoint and resumes when the directive goes.
- **BlockNewWork**: training of the listed priorities that has not started does not start
  (:func:`admission`, which the training controller asks before a first attempt).

Safety: a workload in the scope of a budget whose data is stale keeps its directive as it is
(nothing new is enforced on missing data, nothing is reversed either); a directive changed less
than the policy's ``cooldown`` ago is not changed again (deferred); at most
``maxActionsPerCycle`` changes per policy and cycle, strongest first.

Expected spot cost of one useful GPU-hour (the savings estimate)::

    spot x (1 + write/interval + rate x interval/2 + rate x restart)

with ``write/interval`` the checkpoint overhead, ``rate`` the expected preemptions per hour
(each losing half an interval of work on average and a restart). Savings = 1 - that / on-demand.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Final

from steward.api.directive import GovernorAction, GovernorDirective
from steward.api.v1alpha1.budget import Budget, BudgetAction, BudgetState
from steward.api.v1alpha1.common import PolicyMode, Priority
from steward.api.v1alpha1.compressionjob import CompressionJob
from steward.api.v1alpha1.costpolicy import CostPolicy, InferenceSpotRule, TrainingSpotRule
from steward.api.v1alpha1.inferenceservice import InferenceService
from steward.api.v1alpha1.trainingjob import (
    CapacityPreference,
    CapacityStrategy,
    TrainingJob,
    TrainingJobPhase,
)
from steward.cost.catalog import GPUHourPrices
from steward.cost.usage import WorkloadRef
from steward.policy.budgets import DATA_STALE
from steward.policy.compression import (
    DEFAULT_FIGURES_MAX_AGE,
    CompressionRequest,
    compression_request,
)
from steward.policy.conditions import condition
from steward.policy.scope import WorkloadFacts, selects

#: Ladder order of the governor's actions: rate limits take the strongest first.
RANK: Final = {action: rank for rank, action in enumerate(GovernorAction)}
_FINISHED: Final = (TrainingJobPhase.SUCCEEDED, TrainingJobPhase.FAILED)


@dataclass(frozen=True)
class SpotEconomics:
    """What the savings estimate assumes beyond the catalog's prices."""

    preemptions_per_hour: Decimal = Decimal("0.1")
    restart: timedelta = timedelta(minutes=5)


@dataclass(frozen=True)
class WorkloadView:
    """One workload as the governor sees it: exactly one of ``training``/``serving`` is set."""

    facts: WorkloadFacts
    training: TrainingJob | None = None
    serving: InferenceService | None = None
    directive: GovernorDirective | None = None


@dataclass(frozen=True)
class Snapshot:
    """Everything one decision reads. ``prices`` maps a GPU model (None: unspecified) to its
    GPU-hour prices; a model missing there cannot be priced, so it is not moved to spot.
    ``compression_jobs`` are every CompressionJob; a service's accounted figures older than
    ``figures_max_age`` fire no compression trigger."""

    budgets: tuple[Budget, ...]
    workloads: tuple[WorkloadView, ...]
    prices: Mapping[str | None, GPUHourPrices] = field(default_factory=dict)
    economics: SpotEconomics = field(default_factory=SpotEconomics)
    compression_jobs: tuple[CompressionJob, ...] = ()
    figures_max_age: timedelta = DEFAULT_FIGURES_MAX_AGE


@dataclass(frozen=True)
class Decision:
    """A change of one workload's directive (``directive`` None: remove it), or a held one.

    ``mode`` is the governing policy's (Enforce applies it, DryRun records it). ``inputs`` are
    the numbers the decision rests on, for Events, ``steward explain`` and metrics.
    """

    ref: WorkloadRef
    policy: str
    mode: PolicyMode
    directive: GovernorDirective | None
    previous: GovernorDirective | None
    summary: str
    inputs: tuple[tuple[str, str], ...] = ()

    @property
    def added(self) -> tuple[GovernorAction, ...]:
        before = set(self.previous.actions if self.previous else ())
        after = self.directive.actions if self.directive else []
        return tuple(a for a in after if a not in before)

    @property
    def removed(self) -> tuple[GovernorAction, ...]:
        after = set(self.directive.actions if self.directive else ())
        return tuple(a for a in (self.previous.actions if self.previous else ()) if a not in after)


@dataclass(frozen=True)
class Deferred:
    ref: WorkloadRef
    reason: str


@dataclass(frozen=True)
class Plan:
    decisions: tuple[Decision, ...]
    deferred: tuple[Deferred, ...] = ()
    compressions: tuple[CompressionRequest, ...] = ()
    #: Estimated USD per hour the directives in force save versus running without them.
    savings_usd_per_hour: Decimal = Decimal(0)


def governing_policy(policies: Sequence[CostPolicy], facts: WorkloadFacts) -> CostPolicy | None:
    """The policy that decides for ``facts`` (see the module docstring)."""
    ranked = sorted(
        (p for p in policies if p.spec.mode != PolicyMode.OFF),
        key=lambda p: (-p.spec.priority, p.metadata.name or ""),
    )
    return next((p for p in ranked if selects(p.spec.selector, facts)), None)


def admission(
    facts: WorkloadFacts,
    priority: Priority,
    budgets: Sequence[Budget],
    policies: Sequence[CostPolicy],
    now: datetime,
) -> Decision | None:
    """BlockNewWork on new training ``facts``, or None: the governing policy lists its priority
    in ``blockPriorities`` and a budget selecting it has BlockNewWork in force (held as is while
    the budget's data is stale). Under Enforce the job waits (``summary`` says why and until
    when); under DryRun it starts and the decision is only recorded."""
    policy = governing_policy(policies, facts)
    if policy is None or priority not in policy.spec.budget_actions.block_priorities:
        return None
    for budget in sorted(budgets, key=lambda b: b.metadata.name or ""):
        status = budget.status
        if status is None or not selects(budget.spec.scope, facts):
            continue
        if BudgetAction.BLOCK_NEW_WORK in status.active_actions:
            why = (
                f"Budget {budget.metadata.name} is {status.state.value} at "
                f"{status.utilization_percent:.1f}% with BlockNewWork in force (policy "
                f"{policy.metadata.name}); starts when the period resets at "
                f"{_when(status.period_end)} or the limit is raised"
            )
            directive = GovernorDirective(
                policy=policy.metadata.name or "", actions=[GovernorAction.BLOCK],
                reasons=[f"BlockNewWork: {why}"], since=now,
            )  # fmt: skip
            inputs = (("budget " + (budget.metadata.name or ""), _budget_line(budget)),)
            return Decision(facts.ref, directive.policy, policy.spec.mode, directive, None, why,
                            inputs)  # fmt: skip
    return None


def decide(snapshot: Snapshot, policies: Sequence[CostPolicy], now: datetime) -> Plan:
    """The directive changes this cycle, deferrals and the estimated savings; see the module
    docstring for the rules. Identical inputs give identical plans."""
    wanted: list[Decision] = []
    deferred: list[Deferred] = []
    savings = Decimal(0)
    for view in sorted(snapshot.workloads, key=lambda v: _key(v.facts.ref)):
        if not view.facts.managed:
            continue
        policy = governing_policy(policies, view.facts)
        budgets = [b for b in snapshot.budgets if b.status and selects(b.spec.scope, view.facts)]
        stale = [b.metadata.name or "" for b in budgets if data_stale(b)]
        if stale:
            if view.directive is not None or policy is not None:
                deferred.append(Deferred(view.facts.ref, f"held: data of Budget {stale[0]} stale"))
            continue
        desired, inputs = _desired(view, policy, budgets, snapshot, now)
        savings += _savings(view, desired, snapshot)
        if _same(desired, view.directive):
            continue
        cooldown = policy.spec.budget_actions.cooldown if policy else timedelta(0)
        if view.directive is not None and now - view.directive.since < cooldown:
            left = view.directive.since + cooldown - now
            deferred.append(Deferred(view.facts.ref, f"cooldown: {left.total_seconds():.0f}s left"))
            continue
        wanted.append(_decision(view, policy, desired, inputs))
    decisions, limited = _rate_limited(wanted, policies)
    compressions = _compressions(snapshot, policies, now)
    return Plan(tuple(decisions), tuple(deferred + limited), compressions, savings)


# --- One workload's desired directive -------------------------------------------------------------
def _desired(
    view: WorkloadView,
    policy: CostPolicy | None,
    budgets: Sequence[Budget],
    snapshot: Snapshot,
    now: datetime,
) -> tuple[GovernorDirective | None, list[tuple[str, str]]]:
    if policy is None:
        return None, []
    asked = _asked(budgets)
    reasons: list[str] = []
    inputs: list[tuple[str, str]] = [("policy", f"{policy.metadata.name} ({policy.spec.mode})")]
    for budget in sorted(budgets, key=lambda b: b.metadata.name or ""):
        inputs.append((f"budget {budget.metadata.name}", _budget_line(budget)))
    directive = GovernorDirective(policy=policy.metadata.name or "", since=now)
    if view.training is not None:
        directive = _training(
            view.training, policy, asked, snapshot=snapshot, directive=directive,
            reasons=reasons, inputs=inputs,
        )  # fmt: skip
    elif view.serving is not None:
        directive = _serving(view.serving, policy, asked, directive, reasons)
    if not directive.actions:
        return None, inputs
    directive.actions.sort(key=RANK.__getitem__)
    directive.reasons = reasons
    return directive, inputs


def _asked(budgets: Sequence[Budget]) -> dict[BudgetAction, Budget]:
    """Each budget action in force on the workload, with the (first-named) budget asking it."""
    asked: dict[BudgetAction, Budget] = {}
    for budget in sorted(budgets, key=lambda b: b.metadata.name or ""):
        for action in budget.status.active_actions if budget.status else ():
            asked.setdefault(action, budget)
    return asked


def _training(
    job: TrainingJob,
    policy: CostPolicy,
    asked: Mapping[BudgetAction, Budget],
    *,
    snapshot: Snapshot,
    directive: GovernorDirective,
    reasons: list[str],
    inputs: list[tuple[str, str]],
) -> GovernorDirective:
    spec, status = job.spec, job.status
    phase = status.phase if status else TrainingJobPhase.PENDING
    if phase in _FINISHED:
        return directive
    rules = policy.spec.budget_actions
    spot_rule = _training_spot_rule(policy, asked)
    if spot_rule is not None:
        shift = _spot_shift(job, spot_rule, snapshot, inputs)
        if isinstance(shift, CapacityPreference):
            directive.capacity = shift
            directive.actions.append(GovernorAction.SHIFT_TO_SPOT)
            reasons.append(f"ShiftToSpot: {_why(asked, BudgetAction.SHIFT_TO_SPOT, 'spot rules')}")
    if (
        BudgetAction.SUSPEND_LOW_PRIORITY in asked
        and spec.priority in rules.suspend_priorities
        and spec.checkpoint is not None
    ):
        directive.suspend = True
        directive.actions.append(GovernorAction.SUSPEND)
        reasons.append(
            f"SuspendLowPriority: priority {spec.priority.value}, "
            f"{_why(asked, BudgetAction.SUSPEND_LOW_PRIORITY, '')}; stops at its next checkpoint"
        )
    started = status is not None and status.attempt > 0
    if (
        BudgetAction.BLOCK_NEW_WORK in asked
        and not started
        and spec.priority in rules.block_priorities
    ):
        directive.actions.append(GovernorAction.BLOCK)
        reasons.append(f"BlockNewWork: {_why(asked, BudgetAction.BLOCK_NEW_WORK, '')}")
    return directive


def _training_spot_rule(
    policy: CostPolicy, asked: Mapping[BudgetAction, Budget]
) -> TrainingSpotRule | None:
    configured = policy.spec.spot.training if policy.spec.spot else None
    if configured is not None:
        return configured if configured.enabled else None
    return TrainingSpotRule() if BudgetAction.SHIFT_TO_SPOT in asked else None


def _spot_shift(
    job: TrainingJob, rule: TrainingSpotRule, snapshot: Snapshot, inputs: list[tuple[str, str]]
) -> CapacityPreference | str:
    """The capacity preference that moves ``job`` to spot, or why it is not moved."""
    spec = job.spec
    checkpoint = spec.checkpoint
    if spec.capacity.type != CapacityStrategy.ON_DEMAND:
        return "already asks for spot"
    if spec.priority not in rule.priorities:
        return f"priority {spec.priority.value} is not moved to spot"
    if checkpoint is None or checkpoint.interval > rule.max_checkpoint_interval:
        return "no checkpoint often enough to be interruptible"
    prices = snapshot.prices.get(spec.gpu_model) or snapshot.prices.get(None)
    if prices is None or prices.on_demand <= 0:
        return "no spot and on-demand price to compare"
    saving = spot_savings_percent(
        prices, checkpoint.interval, checkpoint.write_duration, snapshot.economics
    )
    inputs.append(("spot savings", f"{saving:.1f}% expected ({prices.source})"))
    if saving < Decimal(str(rule.min_savings_percent)):
        return f"expected savings {saving:.1f}% below {rule.min_savings_percent}%"
    return CapacityPreference(
        type=CapacityStrategy.SPOT_WITH_FALLBACK,
        max_preemptions=rule.max_preemptions,
        fallback_after=rule.fallback_after,
    )


def spot_savings_percent(
    prices: GPUHourPrices,
    interval: timedelta,
    write: timedelta | None,
    economics: SpotEconomics,
) -> Decimal:
    """Percent saved per useful GPU-hour on spot (see the module docstring's formula)."""
    hours = Decimal(interval.total_seconds()) / 3600
    overhead = Decimal((write or timedelta(0)).total_seconds()) / Decimal(interval.total_seconds())
    rate = economics.preemptions_per_hour
    restart = Decimal(economics.restart.total_seconds()) / 3600
    effective = prices.spot * (1 + overhead + rate * hours / 2 + rate * restart)
    return (1 - effective / prices.on_demand) * 100


def _serving(
    service: InferenceService,
    policy: CostPolicy,
    asked: Mapping[BudgetAction, Budget],
    directive: GovernorDirective,
    reasons: list[str],
) -> GovernorDirective:
    spec = service.spec
    configured = policy.spec.spot.inference if policy.spec.spot else None
    rule = configured or (InferenceSpotRule() if BudgetAction.SHIFT_TO_SPOT in asked else None)
    if rule is not None and rule.enabled and rule.max_spot_percent > spec.capacity.max_spot_percent:
        directive.max_spot_percent = rule.max_spot_percent
        directive.actions.append(GovernorAction.SHIFT_TO_SPOT)
        reasons.append(
            f"ShiftToSpot: up to {rule.max_spot_percent:g}% of the replicas above the on-demand "
            f"base on spot; {_why(asked, BudgetAction.SHIFT_TO_SPOT, 'spot rules')}"
        )
    predictor = spec.predictor
    if BudgetAction.SCALE_INFERENCE_TO_MIN in asked and predictor.desired > predictor.min_replicas:
        directive.replicas = predictor.min_replicas
        directive.actions.append(GovernorAction.SCALE_TO_MIN)
        reasons.append(
            f"ScaleInferenceToMin: {predictor.desired} -> {predictor.min_replicas} replicas; "
            f"{_why(asked, BudgetAction.SCALE_INFERENCE_TO_MIN, '')}"
        )
    return directive


def _compressions(
    snapshot: Snapshot, policies: Sequence[CostPolicy], now: datetime
) -> tuple[CompressionRequest, ...]:
    """The CompressionJobs to start (see :mod:`steward.policy.compression`); none for a
    service in the scope of a budget whose data is stale."""
    requests = []
    for view in sorted(snapshot.workloads, key=lambda v: _key(v.facts.ref)):
        policy = governing_policy(policies, view.facts) if view.facts.managed else None
        if view.serving is None or policy is None:
            continue
        budgets = [b for b in snapshot.budgets if b.status and selects(b.spec.scope, view.facts)]
        if any(data_stale(b) for b in budgets):
            continue
        namespace = view.facts.ref.namespace
        request = compression_request(
            view.serving, policy, budgets=budgets, now=now, max_age=snapshot.figures_max_age,
            jobs=[j for j in snapshot.compression_jobs if j.metadata.namespace == namespace],
        )  # fmt: skip
        if request is not None:
            requests.append(request)
    return tuple(requests)


# --- Savings, comparison, rate limits -------------------------------------------------------------
def _savings(
    view: WorkloadView, directive: GovernorDirective | None, snapshot: Snapshot
) -> Decimal:
    """USD/h the directive saves: spot instead of on-demand for moved GPUs, the whole price
    for suspended or removed ones (on-demand prices; an estimate, not a bill)."""
    if directive is None:
        return Decimal(0)
    if view.training is not None:
        spec = view.training.spec
        prices = snapshot.prices.get(spec.gpu_model) or snapshot.prices.get(None)
        if prices is None:
            return Decimal(0)
        gpus = spec.workers * spec.gpus_per_worker
        if directive.suspend:
            return prices.on_demand * gpus
        if directive.capacity is not None:
            return (prices.on_demand - prices.spot) * gpus
    if view.serving is not None and directive.replicas is not None:
        predictor = view.serving.spec.predictor
        prices = snapshot.prices.get(predictor.gpu_model) or snapshot.prices.get(None)
        if prices is not None:
            fewer = predictor.desired - directive.replicas
            return prices.on_demand * predictor.gpus_per_replica * fewer
    return Decimal(0)


def _same(a: GovernorDirective | None, b: GovernorDirective | None) -> bool:
    if a is None or b is None:
        return a is b
    return a.policy == b.policy and a.effect() == b.effect()


def _decision(
    view: WorkloadView,
    policy: CostPolicy | None,
    desired: GovernorDirective | None,
    inputs: list[tuple[str, str]],
) -> Decision:
    if policy is not None:
        name = policy.metadata.name or ""
    else:
        name = view.directive.policy if view.directive else ""
    mode = policy.spec.mode if policy else PolicyMode.ENFORCE
    if desired is None:
        summary = "reverse: no budget action or rule applies any more"
        if policy is None:
            summary = "reverse: no policy governs the workload any more"
    else:
        summary = "; ".join(desired.reasons)
    return Decision(view.facts.ref, name, mode, desired, view.directive, summary, tuple(inputs))


def _rate_limited(
    wanted: list[Decision], policies: Sequence[CostPolicy]
) -> tuple[list[Decision], list[Deferred]]:
    limits = {p.metadata.name: p.spec.budget_actions.max_actions_per_cycle for p in policies}
    ordered = sorted(wanted, key=lambda d: (-_strength(d), _key(d.ref)))
    taken: dict[str, int] = {}
    decisions, deferred = [], []
    for decision in ordered:
        count = taken.get(decision.policy, 0)
        if count >= limits.get(decision.policy, len(wanted)):
            deferred.append(Deferred(decision.ref, f"rate limit of policy {decision.policy}"))
            continue
        taken[decision.policy] = count + 1
        decisions.append(decision)
    decisions.sort(key=lambda d: _key(d.ref))
    return decisions, deferred


def _strength(decision: Decision) -> int:
    actions = decision.directive.actions if decision.directive else []
    return max((RANK[a] + 1 for a in actions), default=0)


def data_stale(budget: Budget) -> bool:
    """Whether the budget's accounting data is stale (its ``DataStale`` condition is True)."""
    stale = condition(budget.status.conditions, DATA_STALE) if budget.status else None
    return stale is not None and stale.status.value == "True"


def _why(asked: Mapping[BudgetAction, Budget], action: BudgetAction, otherwise: str) -> str:
    budget = asked.get(action)
    if budget is None:
        return otherwise
    return f"Budget {budget.metadata.name} {_budget_line(budget)}"


def _budget_line(budget: Budget) -> str:
    status = budget.status
    if status is None:
        return "not accounted yet"
    state = status.state.value if status.state != BudgetState.OK else "Ok"
    return (
        f"{state} at {status.utilization_percent:.1f}% spent "
        f"(forecast {status.forecast_utilization_percent:.1f}%, rung "
        f"{status.active_threshold_percent or 0:g}%)"
    )


def _when(moment: datetime | None) -> str:
    return moment.isoformat() if moment else "the period's end"


def _key(ref: WorkloadRef) -> tuple[str, str, str]:
    return (ref.kind, ref.namespace, ref.name)
