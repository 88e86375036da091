"""GPU node-pool sizing: ``autoscale(pools, pending, now) -> tuple[PoolDecision, ...]``. Pure.

**Scale up.** Pending GPU pods are placed first-fit decreasing (most GPUs first, then the
longest waiting): onto free GPUs of the pools' ready nodes and of nodes already asked for (so a
pod the scheduler is about to bind adds nothing), else onto a new node of the cheapest pool that
hosts it and may still grow. A pool hosts a pod when its nodes' labels satisfy the pod's node
selector and required node affinity, its taints are tolerated, and a node has enough GPUs. A pool
may grow by at most ``min(maxNodes - desired, scaleUp.maxStep, policy maxScaleUpStep, budget
cap)`` nodes, not within ``scaleUp.cooldown`` of its last scale-up.

**Spot first.** Work that tolerates spot goes to a spot pool when one hosts it; it waits for spot
capacity (the spot pool growing) until it has been pending ``spotFallbackAfter``, then any pool
that hosts it takes it, cheapest first.

**Budget cap.** A node opened for a pod counts against every budget covering the pod's
workload; a budget pays for at most as many more nodes of a pool as its money left after what
is spent and committed covers until its period ends (:func:`budget_cap`; with the policy's
``budgetCap``, the default).

**Scale down.** Only without pending work for the pool: nodes that have held no GPU pod for
``scaleDown.idleTime`` (policy ``scaleDownIdleTime`` overrides) and host no non-evictable pod
are removed, at most ``scaleDown.maxStep`` per decision, not within ``scaleDown.cooldown`` of the
last scaling, never below ``minNodes``. Below ``minNodes`` the pool grows to it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Final

from steward.api.v1alpha1.common import CapacityType, PolicyMode
from steward.api.v1alpha1.costpolicy import CostPolicy, NodePoolRules
from steward.api.v1alpha1.gpunodepool import GPUNodePool, TaintEffect
from steward.policy.placement import PLATFORMS, gpu_model_requirements, node_matches
from steward.policy.scope import matches
from steward.snapshot import NodeRecord

PodKey = tuple[str, str]
#: The shortest time a budget cap counts a new node's cost for.
MIN_CAP_HORIZON: Final = timedelta(hours=1)
_INSTANCE_TYPE_LABEL: Final = "node.kubernetes.io/instance-type"


@dataclass(frozen=True)
class PendingPod:
    """A GPU pod no node has been found for yet. ``gpus``: what it requests, in GPUs (in
    slices of a GPU where its pools share GPUs, :attr:`PoolView.slices_per_gpu`)."""

    key: PodKey
    gpus: int
    since: datetime
    node_selector: Mapping[str, str] = field(default_factory=dict)
    #: Required node-affinity terms (any one must hold); empty: no requirement.
    affinity_terms: tuple[tuple[Mapping[str, Any], ...], ...] = ()
    tolerations: tuple[Mapping[str, Any], ...] = ()
    #: Budgets whose scope covers the pod's workload: their caps limit nodes opened for it.
    budgets: tuple[str, ...] = ()


@dataclass(frozen=True)
class PoolNode:
    """One node of a pool (GPUs in the pods' units). ``idle_since``: when its last GPU pod
    ended (None: busy now)."""

    name: str
    ready: bool
    gpus: int
    allocated_gpus: int
    idle_since: datetime | None
    non_evictable: tuple[str, ...] = ()


@dataclass(frozen=True)
class Limit:
    """What holds a pool's growth: a stable ``key`` (to say it once) and the text with numbers."""

    key: str
    text: str


@dataclass(frozen=True)
class BudgetCap:
    """How many more nodes one budget can pay for until its period ends, and why."""

    nodes: int
    limit: Limit


@dataclass(frozen=True)
class PoolView:
    """A pool as the autoscaler sees it. ``desired`` is the size the provider was last asked
    for (at least the nodes present); ``rules`` the governing policy's node-pool rules."""

    pool: GPUNodePool
    nodes: tuple[PoolNode, ...]
    desired: int
    price_per_node_hour: Decimal | None
    rules: NodePoolRules = field(default_factory=NodePoolRules)
    #: By budget name: how many more nodes of this pool the budget can pay for.
    budget_caps: Mapping[str, BudgetCap] = field(default_factory=dict)
    last_scale_up: datetime | None = None
    last_scale_down: datetime | None = None
    #: Scheduling units per GPU: 1 (``nvidia.com/gpu`` is a whole GPU); the replay packs
    #: shared-GPU pods (fractional GPUs, as in the traced cluster) in thousandths.
    slices_per_gpu: int = 1

    @property
    def name(self) -> str:
        return self.pool.metadata.name or ""

    @property
    def node_slices(self) -> int:
        """What one node of the pool offers, in the pods' units."""
        return self.pool.spec.gpus_per_node * self.slices_per_gpu


@dataclass(frozen=True)
class PoolDecision:
    """A new desired size for one pool (``remove``: which nodes go on a scale-down), or a held
    one with ``blocked`` saying what held it (cap, max, cooldown)."""

    pool: str
    from_nodes: int
    to_nodes: int
    reason: str
    remove: tuple[str, ...] = ()
    pods: tuple[PodKey, ...] = ()
    blocked: Limit | None = None

    @property
    def changes(self) -> bool:
        return self.to_nodes != self.from_nodes or bool(self.remove)


def pool_policy(policies: Sequence[CostPolicy], pool: GPUNodePool) -> CostPolicy | None:
    """The CostPolicy that sizes ``pool``: of those with ``nodePools`` whose ``poolSelector``
    selects it (none: every pool), the highest ``priority``, ties by name; Off sizes nothing."""
    ranked = sorted(
        (p for p in policies if p.spec.mode != PolicyMode.OFF and p.spec.node_pools is not None),
        key=lambda p: (-p.spec.priority, p.metadata.name or ""),
    )
    for policy in ranked:
        selector = policy.spec.node_pools.pool_selector  # type: ignore[union-attr]
        if selector is None or matches(selector, pool.metadata.labels):
            return policy
    return None


def pool_labels(pool: GPUNodePool) -> dict[str, str]:
    """The labels every node of ``pool`` carries: its own, and the well-known ones for its GPU
    model, instance type and capacity type (Steward's and Karpenter's keys)."""
    spec = pool.spec
    spot = spec.capacity_type == CapacityType.SPOT
    labels = {_INSTANCE_TYPE_LABEL: spec.instance_type}
    for requirement in gpu_model_requirements(spec.gpu_model):
        labels[requirement["key"]] = requirement["values"][0]
    for platform in (PLATFORMS["steward"], PLATFORMS["karpenter"]):
        value = platform.spot if spot else platform.on_demand
        if value is not None:
            labels[platform.key] = value
    return labels | dict(spec.labels)


def hosts(pool: GPUNodePool, pod: PendingPod, slices_per_gpu: int = 1) -> bool:
    """Whether a node of ``pool`` could run ``pod`` (see the module docstring)."""
    if pod.gpus > pool.spec.gpus_per_node * slices_per_gpu:
        return False
    labels = pool_labels(pool)
    if any(labels.get(key) != value for key, value in pod.node_selector.items()):
        return False
    record = NodeRecord("", labels, ())
    terms = [[dict(requirement) for requirement in term] for term in pod.affinity_terms]
    if terms and not any(node_matches(record, term) for term in terms):
        return False
    return all(
        _tolerated(taint.key, taint.value, taint.effect, pod.tolerations)
        for taint in pool.spec.taints
        if taint.effect != TaintEffect.PREFER_NO_SCHEDULE
    )


def _tolerated(
    key: str, value: str, effect: TaintEffect, tolerations: Sequence[Mapping[str, Any]]
) -> bool:
    for toleration in tolerations:
        if toleration.get("effect") and toleration["effect"] != effect.value:
            continue
        if toleration.get("operator") == "Exists":
            if not toleration.get("key") or toleration["key"] == key:
                return True
        elif toleration.get("key") == key and toleration.get("value", "") == value:
            return True
    return False


def autoscale(
    views: Sequence[PoolView], pending: Sequence[PendingPod], now: datetime
) -> tuple[PoolDecision, ...]:
    """One decision per pool, in pool-name order (see the module docstring). Identical inputs
    give identical decisions."""
    ordered = sorted(views, key=lambda v: v.name)
    placed, waiting = _place(ordered, pending, now)
    return tuple(_decide_pool(view, placed, waiting, now) for view in ordered)


# --- Scale up: first-fit decreasing ---------------------------------------------------------------
@dataclass
class _Room:
    """Free GPUs per (existing or asked-for) node of a pool, and the nodes opened so far."""

    free: list[int]
    opened: int = 0
    limit: int = 0
    held: Limit | None = None
    pods: list[PodKey] = field(default_factory=list)
    by_budget: dict[str, int] = field(default_factory=dict)


def _place(
    views: Sequence[PoolView], pending: Sequence[PendingPod], now: datetime
) -> tuple[dict[str, _Room], dict[str, list[PodKey]]]:
    rooms = {view.name: _room(view, now) for view in views}
    waiting: dict[str, list[PodKey]] = {}
    for pod in sorted(pending, key=lambda p: (-p.gpus, p.since, p.key)):
        fitting = sorted((v for v in views if hosts(v.pool, pod, v.slices_per_gpu)), key=_by_price)
        # Free GPUs anywhere the pod fits: the scheduler binds it there without new nodes.
        if any(_fit_existing(rooms[v.name], pod) for v in fitting):
            continue
        candidates = _candidates(fitting, pod, now)
        if not any(_open(rooms[v.name], v, pod) for v in candidates):
            for view in candidates[:1]:
                waiting.setdefault(view.name, []).append(pod.key)
    return rooms, waiting


def _room(view: PoolView, now: datetime) -> _Room:
    free = [max(n.gpus - n.allocated_gpus, 0) for n in view.nodes if n.ready]
    asked = max(view.desired - len(view.nodes), 0)
    free += [view.node_slices] * asked
    limit, held = _growth_limit(view, now)
    return _Room(free=free, limit=limit, held=held)


def _growth_limit(view: PoolView, now: datetime) -> tuple[int, Limit]:
    """Most nodes the pool may add now (budgets aside), and what sets that limit."""
    spec = view.pool.spec
    if view.last_scale_up is not None and now - view.last_scale_up < spec.scale_up.cooldown:
        until = (view.last_scale_up + spec.scale_up.cooldown).isoformat()
        return 0, Limit("cooldown", f"scale-up cooldown until {until}")
    limits = [
        (spec.max_nodes - view.desired, Limit("maxNodes", f"at maxNodes {spec.max_nodes}")),
        (spec.scale_up.max_step, Limit("maxStep", f"scaleUp.maxStep {spec.scale_up.max_step}")),
    ]
    if view.rules.max_scale_up_step is not None:
        step = view.rules.max_scale_up_step
        limits.append((step, Limit("policyMaxStep", f"policy maxScaleUpStep {step}")))
    nodes, limit = min(limits, key=lambda pair: pair[0])
    return max(nodes, 0), limit


def _candidates(fitting: list[PoolView], pod: PendingPod, now: datetime) -> list[PoolView]:
    """Pools that may grow for ``pod``: spot pools only while spot may still come."""
    spot = [v for v in fitting if v.pool.spec.capacity_type == CapacityType.SPOT]
    if not spot:
        return fitting
    fallback = min(v.rules.spot_fallback_after for v in spot)
    return fitting if now - pod.since >= fallback else spot


def _by_price(view: PoolView) -> tuple[Decimal, str]:
    return _gpu_hour_price(view), view.name


def _gpu_hour_price(view: PoolView) -> Decimal:
    if view.price_per_node_hour is None:
        return Decimal("Infinity")
    return view.price_per_node_hour / view.pool.spec.gpus_per_node


def _fit_existing(room: _Room, pod: PendingPod) -> bool:
    for index, free in enumerate(room.free):
        if free >= pod.gpus:
            room.free[index] = free - pod.gpus
            room.pods.append(pod.key)
            return True
    return False


def _open(room: _Room, view: PoolView, pod: PendingPod) -> bool:
    if room.opened >= room.limit:
        return False
    if view.rules.budget_cap:
        for budget in pod.budgets:
            cap = view.budget_caps.get(budget)
            if cap is not None and room.by_budget.get(budget, 0) >= cap.nodes:
                room.held = cap.limit
                return False
    room.opened += 1
    for budget in pod.budgets:
        room.by_budget[budget] = room.by_budget.get(budget, 0) + 1
    room.free.append(view.node_slices - pod.gpus)
    room.pods.append(pod.key)
    return True


# --- One pool's decision --------------------------------------------------------------------------
def _decide_pool(
    view: PoolView, rooms: dict[str, _Room], waiting: dict[str, list[PodKey]], now: datetime
) -> PoolDecision:
    spec = view.pool.spec
    room = rooms[view.name]
    current = view.desired
    base = PoolDecision(view.name, current, current, "steady")
    if current < spec.min_nodes:
        grow = spec.min_nodes - current
        return replace(base, to_nodes=spec.min_nodes, reason=f"{grow} node(s) up to minNodes")
    stuck = waiting.get(view.name, [])
    blocked = room.held if stuck else None
    if room.opened:
        gpus = spec.gpus_per_node
        reason = (
            f"{len(room.pods)} pending pod(s) bin-packed onto {room.opened} new node(s) of "
            f"{gpus} GPU(s)"
        )
        return replace(base, to_nodes=current + room.opened, reason=reason,
                       pods=tuple(room.pods), blocked=blocked)  # fmt: skip
    if stuck:
        return replace(base, reason=f"{len(stuck)} pending pod(s) wait", blocked=blocked)
    if room.pods:
        return replace(base, reason=f"{len(room.pods)} pending pod(s) fit existing nodes")
    return _scale_down(view, base, now)


def _scale_down(view: PoolView, base: PoolDecision, now: datetime) -> PoolDecision:
    spec = view.pool.spec
    idle_time = view.rules.scale_down_idle_time or spec.scale_down.idle_time
    last = max((t for t in (view.last_scale_up, view.last_scale_down) if t), default=None)
    if last is not None and now - last < spec.scale_down.cooldown:
        return base
    idle = sorted(
        (n for n in view.nodes if _removable(n, idle_time, now)),
        key=lambda n: (n.idle_since, n.name),
    )
    count = min(len(idle), spec.scale_down.max_step, max(base.from_nodes - spec.min_nodes, 0))
    if count <= 0:
        return base
    removed = tuple(n.name for n in idle[:count])
    minutes = idle_time.total_seconds() / 60
    reason = f"{count} node(s) idle for {minutes:g} min or more, no non-evictable pods"
    return replace(base, to_nodes=base.from_nodes - count, remove=removed, reason=reason)


def _removable(node: PoolNode, idle_time: timedelta, now: datetime) -> bool:
    return (
        node.allocated_gpus == 0
        and not node.non_evictable
        and node.idle_since is not None
        and now - node.idle_since >= idle_time
    )


@dataclass(frozen=True)
class BudgetFigures:
    """What a budget cap reads: the USD limit, spend and forecast, and the hourly cost of the
    nodes running the budget's pods now (the forecast's burn rate lags the accounting)."""

    name: str
    limit_usd: Decimal
    spent_usd: Decimal
    forecast_usd: Decimal
    period_end: datetime
    running_usd_per_hour: Decimal = Decimal(0)


def budget_cap(budget: BudgetFigures, price_per_node_hour: Decimal, now: datetime) -> BudgetCap:
    """More nodes at ``price_per_node_hour`` the budget can pay for until its period ends::

        committed = max(forecast - spent, running cost per hour x hours left)
        nodes     = floor((limit - spent - committed) / (price x max(hours left, 1 h)))

    A node added is counted for at least :data:`MIN_CAP_HORIZON` (one added just before the
    period ends still runs on)."""
    left = max(budget.period_end - now, timedelta(0))
    hours_left = Decimal(left.total_seconds()) / 3600
    horizon = max(hours_left, Decimal(MIN_CAP_HORIZON.total_seconds()) / 3600)
    committed = max(budget.forecast_usd - budget.spent_usd,
                    budget.running_usd_per_hour * hours_left)  # fmt: skip
    headroom = budget.limit_usd - budget.spent_usd - committed
    if price_per_node_hour <= 0:
        nodes = 0 if headroom < 0 else 10**6
    else:
        nodes = max(math.floor(headroom / (price_per_node_hour * horizon)), 0)
    text = (
        f"budget cap: Budget {budget.name} has {headroom:.2f} USD of {budget.limit_usd} USD "
        f"left after {budget.spent_usd:.2f} spent and {committed:.2f} committed; a node costs "
        f"{price_per_node_hour} USD/h x {horizon:.2f} h = {price_per_node_hour * horizon:.2f} "
        f"USD; {nodes} more node(s) affordable"
    )
    return BudgetCap(nodes, Limit(f"budget/{budget.name}", text))
