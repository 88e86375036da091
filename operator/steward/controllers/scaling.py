"""GPU node pools in the governor cycle: observe (from the cycle's lists), ``autoscale`` (pure),
apply through each pool's provider, report in the pool's status and Events.

A pool is sized only when a CostPolicy with ``nodePools`` selects it (highest ``priority``,
ties by name; Off selects nothing). Under Enforce its provider is asked for the new size (the
Static provider never is); under DryRun, or for a Static pool, the decision is recorded only.
Every pool gets its observed figures in status each cycle.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from steward.act.kube import GPU_NODE_POOLS, Kube
from steward.act.nodepools import NodePoolProvider, provider_for
from steward.api.quantities import decimal_to_json
from steward.api.v1alpha1.budget import Budget
from steward.api.v1alpha1.common import PolicyMode
from steward.api.v1alpha1.costpolicy import CostPolicy, NodePoolRules
from steward.api.v1alpha1.gpunodepool import GPUNodePool, ProviderType, ScaleDecision
from steward.controllers import metrics
from steward.cost.catalog import PriceCatalog
from steward.observe.pools import pending_gpu_pods, pool_nodes
from steward.policy.autoscaling import (
    BudgetCap,
    BudgetFigures,
    PoolDecision,
    PoolView,
    autoscale,
    budget_cap,
    pool_policy,
)
from steward.policy.budgets import status_amount
from steward.policy.conditions import set_condition
from steward.policy.notes import Note

log = logging.getLogger("steward.governor")
Raw = dict[str, Any]
LIMITED = "ScaleUpLimited"


@dataclass
class PoolMemory:
    """What sizing keeps between cycles: since when each node has been seen idle, and the last
    thing said about each pool (so standing DryRun decisions and limits are said once)."""

    idle_since: dict[str, datetime] = field(default_factory=dict)
    said: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Pool:
    raw: Raw
    model: GPUNodePool
    provider: NodePoolProvider
    policy: CostPolicy | None
    view: PoolView
    nodes: list[Raw]


def scale_pools(
    kube: Kube,
    catalog: PriceCatalog,
    memory: PoolMemory,
    *,
    lists: Mapping[str, list[Raw]],
    budgets: Sequence[Budget],
    policies: Sequence[CostPolicy],
    budgets_of: Callable[[Raw], tuple[str, ...]],
    now: datetime,
    utilization: Mapping[str, tuple[float, int]] | None = None,
) -> tuple[PoolDecision, ...]:
    """One sizing pass over ``lists`` (``pools``, ``nodes``, ``pods``: raw objects)."""
    pools = _pools(kube, catalog, memory, lists, policies=policies, now=now)
    running = _running_cost(pools, lists["pods"], budgets_of)
    pools = [
        replace(p, view=replace(p.view, budget_caps=_caps(
            budgets, p.view.price_per_node_hour, running, now)))
        for p in pools
    ]  # fmt: skip
    governed = [p for p in pools if p.policy is not None]
    pending = pending_gpu_pods(lists["pods"], budgets_of)
    decisions = {d.pool: d for d in autoscale([p.view for p in governed], pending, now)}
    for pool in pools:
        decision = decisions.get(pool.view.name)
        desired = _carry_out(kube, memory, pool, decision, now) if decision else pool.view.desired
        _report(
            kube, pool, decision, desired, now, utilization=_utilization(pool, utilization or {})
        )
    return tuple(decisions.values())


def _pools(
    kube: Kube,
    catalog: PriceCatalog,
    memory: PoolMemory,
    lists: Mapping[str, list[Raw]],
    *,
    policies: Sequence[CostPolicy],
    now: datetime,
) -> list[Pool]:
    pools = []
    seen: set[str] = set()
    for raw in sorted(lists["pools"], key=lambda r: str(r["metadata"]["name"])):
        try:
            model = GPUNodePool.model_validate(raw)
        except ValueError:
            continue  # the CRD's validation refuses such objects; an old one decides nothing
        provider = provider_for(kube, model)
        nodes = provider.nodes(model, lists["nodes"])
        observed = pool_nodes(nodes, lists["pods"], memory.idle_since)
        for node in observed:
            seen.add(node.name)
            if node.allocated_gpus == 0:
                memory.idle_since.setdefault(node.name, now)
            else:
                memory.idle_since.pop(node.name, None)
        observed = pool_nodes(nodes, lists["pods"], memory.idle_since)
        capacity = provider.describe(model, catalog, now)
        policy = pool_policy(policies, model)
        up, down = _last_scalings(model)
        view = PoolView(
            pool=model, nodes=observed, desired=max(provider.desired(model, nodes), len(nodes)),
            price_per_node_hour=capacity.price_per_node_hour,
            rules=policy.spec.node_pools or NodePoolRules() if policy else NodePoolRules(),
            last_scale_up=up, last_scale_down=down,
        )  # fmt: skip
        pools.append(Pool(raw, model, provider, policy, view, nodes))
    for name in [n for n in memory.idle_since if n not in seen]:
        del memory.idle_since[name]
    return pools


def _running_cost(
    pools: Sequence[Pool], pods: Sequence[Raw], budgets_of: Callable[[Raw], tuple[str, ...]]
) -> dict[str, Decimal]:
    """Per budget: USD per hour of the pool nodes running any of its pods now (whole nodes)."""
    price_of = {
        str(node["metadata"]["name"]): pool.view.price_per_node_hour
        for pool in pools
        for node in pool.nodes
        if pool.view.price_per_node_hour is not None
    }
    charged: set[tuple[str, str]] = set()
    running: dict[str, Decimal] = defaultdict(Decimal)
    for pod in pods:
        node = str((pod.get("spec") or {}).get("nodeName") or "")
        price = price_of.get(node)
        if price is None or (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            continue
        for budget in budgets_of(pod):
            if (budget, node) not in charged:
                charged.add((budget, node))
                running[budget] += price
    return running


def _caps(
    budgets: Sequence[Budget], price: Decimal | None, running: Mapping[str, Decimal],
    now: datetime,
) -> dict[str, BudgetCap]:  # fmt: skip
    """Each USD-limited budget's cap on a pool; none for an unpriced pool. A budget whose data
    is stale caps by its last accounted figures (held, never lowered), so an outage neither
    lifts the cap nor tightens it; one not accounted yet has spent nothing known."""
    caps = {}
    for budget in budgets:
        status, limit = budget.status, budget.spec.limits.usd
        if price is None or status is None or limit is None or status.period_end is None:
            continue
        name = budget.metadata.name or ""
        spent = Decimal(status.spent.usd or 0)
        forecast = Decimal(status.forecast.usd) if status.forecast.usd is not None else spent
        figures = BudgetFigures(name, Decimal(limit), spent, forecast, status.period_end,
                                running.get(name, Decimal(0)))  # fmt: skip
        caps[name] = budget_cap(figures, price, now)
    return caps


def _last_scalings(pool: GPUNodePool) -> tuple[datetime | None, datetime | None]:
    decision = pool.status.last_decision if pool.status else None
    if decision is None or decision.to_nodes == decision.from_nodes:
        return None, None
    if decision.to_nodes > decision.from_nodes:
        return decision.time, None
    return None, decision.time


def _carry_out(
    kube: Kube, memory: PoolMemory, pool: Pool, decision: PoolDecision, now: datetime
) -> int:
    """The desired size after ``decision``: applied under Enforce, else recorded."""
    name = pool.view.name
    limit = decision.blocked
    if limit is not None and memory.said.get(f"{name}/limited") != limit.key:
        memory.said[f"{name}/limited"] = limit.key
        kube.event(pool.raw, Note("Warning", LIMITED, limit.text), now=now, action="Scale")
    elif limit is None:
        memory.said.pop(f"{name}/limited", None)
    if not decision.changes:
        return pool.view.desired
    direction = "Up" if decision.to_nodes > decision.from_nodes else "Down"
    line = f"{decision.from_nodes} -> {decision.to_nodes} nodes: {decision.reason}"
    if decision.remove:
        line += f" (removing {', '.join(decision.remove)})"
    mode = pool.policy.spec.mode if pool.policy else PolicyMode.DRY_RUN
    if mode == PolicyMode.ENFORCE and pool.model.spec.provider.type != ProviderType.STATIC:
        pool.provider.set_desired(pool.model, decision.to_nodes, decision.remove)
        log.info("GPUNodePool %s: %s", name, line)
        kube.event(pool.raw, Note("Normal", f"Scale{direction}", line), now=now, action="Scale")
        metrics.ACTIONS.labels(f"Scale{direction}", mode.value, "apply").inc()
        return decision.to_nodes
    if memory.said.get(name) != line:
        memory.said[name] = line
        why = "DryRun" if mode == PolicyMode.DRY_RUN else "Static provider"
        note = Note("Normal", f"WouldScale{direction}", f"{why}: {line}")
        kube.event(pool.raw, note, now=now, action="Scale")
        metrics.ACTIONS.labels(f"Scale{direction}", PolicyMode.DRY_RUN.value, "apply").inc()
    return pool.view.desired


def _utilization(pool: Pool, samples: Mapping[str, tuple[float, int]]) -> float | None:
    """Mean DCGM utilisation over the pool's GPU samples in the newest accounted window."""
    found = [samples[n.name] for n in pool.view.nodes if n.name in samples]
    count = sum(c for _, c in found)
    return round(sum(t for t, _ in found) / count, 2) if count else None


def _report(
    kube: Kube,
    pool: Pool,
    decision: PoolDecision | None,
    desired: int,
    now: datetime,
    *,
    utilization: float | None,
) -> None:
    """Write the pool's observed figures, and the decision when it changed something."""
    view, status = pool.view, pool.model.status
    nodes = view.nodes
    price = view.price_per_node_hour
    conditions = list(status.conditions) if status else []
    generation = pool.raw["metadata"].get("generation")
    if decision is not None:
        limit = decision.blocked
        conditions = set_condition(
            conditions, LIMITED, limit is not None, "Limited" if limit else "NotLimited",
            limit.text if limit else "", now=now, generation=generation,
        )  # fmt: skip
    body: Raw = {
        "nodes": len(nodes),
        "readyNodes": sum(1 for n in nodes if n.ready),
        "desiredNodes": desired,
        "allocatedGPUs": sum(n.allocated_gpus for n in nodes),
        "totalGPUs": sum(n.gpus for n in nodes),
        "utilizationPercent": utilization,
        "hourlyCostUSD": decimal_to_json(status_amount(price * len(nodes))) if price else None,
        "observedGeneration": generation,
        "conditions": [c.model_dump(mode="json", by_alias=True) for c in conditions],
    }
    if decision is not None and decision.changes:
        last = ScaleDecision(time=now, from_nodes=decision.from_nodes,
                             to_nodes=decision.to_nodes, reason=decision.reason[:1024])  # fmt: skip
        if desired == decision.to_nodes:  # applied
            body["lastScaleTime"] = now.isoformat().replace("+00:00", "Z")
            body["lastDecision"] = last.model_dump(mode="json", by_alias=True)
    kube.merge_patch(GPU_NODE_POOLS, None, view.name, {"status": body}, "status")
