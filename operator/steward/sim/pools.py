"""The replay's GPU node pools: nodes opened and closed by the operator's own ``autoscale()``,
runs bound onto them, spot nodes reclaimed as the capacity trace falls, and the bill for every
node from opening to closing, busy or idle.

Used when the policies directory holds GPUNodePools (else the engine only counts GPUs). Each
pool is sized by the CostPolicy that selects it (:func:`pool_policy`; none: the defaults) for
every replayed policy alike, so the baselines pay for idle and fragmented nodes too.
Modelled as follows (docs/simulator.md says the same):

- A run asks for a node of its capacity type (the TrainingJob controller pins spot or
  on-demand); it binds best fit (the fullest node it fits on, as a GPU cluster's bin-packing
  scheduler does), else ``autoscale`` is asked with it pending and the nodes it opens are ready
  at once (a run's start-up is the engine's restart latency).
- GPUs are shared in thousandths (:data:`SLICES`; openb's ``gpu_milli``, as in the traced
  cluster): a 0.5-GPU pod takes 500 of a node's ``1000 x gpusPerNode``.
- Spot pools together hold at most the GPUs the capacity trace makes obtainable (whole nodes of
  any spot pool, out of what no spot node holds yet); when it falls, the newest spot nodes are
  reclaimed and every run on them is preempted.
- A node that becomes idle is looked at again when its idle time is over; a pod held by the
  scale-up cooldown when it ends. Budget caps on growth are not modelled (the replay's Budgets
  act through the governor's ladder).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Final

from steward.api.v1alpha1.common import CapacityType
from steward.api.v1alpha1.costpolicy import CostPolicy, NodePoolRules
from steward.api.v1alpha1.gpunodepool import GPUNodePool
from steward.policy.autoscaling import (
    PendingPod,
    PoolDecision,
    PoolNode,
    PoolView,
    autoscale,
    pool_policy,
)
from steward.policy.placement import PLATFORMS
from steward.sim.budgets import Governance, PolicyError, moment
from steward.sim.model import PriceSeries, SimJob

#: Scheduling units per GPU.
SLICES: Final = 1000
_CAPACITY = PLATFORMS["steward"]
_TOLERATE_ALL: Final = ({"operator": "Exists"},)

#: Bills a node's GPUs from ``start`` to ``end`` seconds: ``(gpus, start, end, on_spot)``.
Biller = Callable[[int, float, float, bool], None]
#: Asks to be called back (``NodePools.review``) at a moment.
Scheduler = Callable[[float], None]


@dataclass(frozen=True)
class Request:
    """A run asking for a node: job ``index``, its GPUs, capacity type, since when it asks."""

    index: int
    gpus: float
    on_spot: bool
    since: float


def slices(gpus: float) -> int:
    """A request of ``gpus`` GPUs in scheduling units (rounded up)."""
    return max(math.ceil(gpus * SLICES - 1e-6), 1)


@dataclass
class _Node:
    name: str
    opened: float
    free: int
    jobs: dict[int, int] = field(default_factory=dict)  # job index -> units held
    idle_since: float | None = None


@dataclass
class _Pool:
    model: GPUNodePool
    rules: NodePoolRules
    nodes: dict[str, _Node] = field(default_factory=dict)  # in opening order
    opened: int = 0
    last_up: float | None = None
    last_down: float | None = None

    @property
    def name(self) -> str:
        return self.model.metadata.name or ""

    @property
    def spot(self) -> bool:
        return self.model.spec.capacity_type == CapacityType.SPOT

    @property
    def gpus(self) -> int:
        return self.model.spec.gpus_per_node

    @property
    def size(self) -> int:
        return self.gpus * SLICES


class NodePools:
    """The pools of one replay. The engine calls :meth:`take` to start a run (:meth:`admit`
    for the runs waiting for room, in order), :meth:`release` when it ends, :meth:`reclaim`
    when spot capacity changes, :meth:`review` when asked to, :meth:`close` at the end;
    ``bill`` is charged for every node's lifetime."""

    def __init__(
        self,
        pools: Sequence[GPUNodePool],
        policies: Sequence[CostPolicy],
        prices: PriceSeries,
        *,
        bill: Biller,
        schedule: Scheduler,
    ) -> None:
        self.pools = [
            _Pool(p, _rules(pool_policy(policies, p)))
            for p in sorted(pools, key=lambda p: p.metadata.name or "")
        ]
        self.prices = prices
        self.bill = bill
        self.schedule = schedule
        self.spot_gpus = 0.0
        self.where: dict[int, tuple[_Pool, _Node]] = {}

    # --- Runs ------------------------------------------------------------------------------------
    def take(self, index: int, gpus: float, now: float, *, on_spot: bool) -> bool:
        """Bind job ``index``'s run (``gpus`` GPUs) onto a node of its capacity type, opening
        nodes as ``autoscale`` decides; False when none can be had now."""
        return bool(self.admit([Request(index, gpus, on_spot, now)], now))

    def admit(self, requests: Sequence[Request], now: float) -> list[int]:
        """Bind what of ``requests`` (first come, first served) fits the nodes, ask ``autoscale``
        once with the rest pending, bind again; the jobs bound, in that order."""
        bound = self._bind_all(requests)
        rest = [r for r in requests if r.index not in self.where]
        growing = {
            on_spot
            for on_spot in (False, True)
            if any(self._may_grow(p, now) for p in self.pools if p.spot == on_spot)
        }
        pending = self._pending([r for r in rest if r.on_spot in growing])
        if pending:
            self._apply(autoscale(self._views(now), pending, moment(now)), now)
            bound += self._bind_all(rest)
        return bound

    def _pending(self, requests: Sequence[Request]) -> list[PendingPod]:
        """``requests`` as pending pods, no more than the growing pools could open nodes for in
        one decision (the autoscaler's cost grows with the pods it is given)."""
        room = {False: 0, True: 0}
        for pool in self.pools:
            room[pool.spot] += pool.size * pool.model.spec.scale_up.max_step
        pods = []
        for request in requests:
            units = slices(request.gpus)
            if room[request.on_spot] < units:
                continue
            room[request.on_spot] -= units
            pods.append(PendingPod((str(request.index), ""), units, moment(request.since),
                                   node_selector=_selector(request.on_spot),
                                   tolerations=_TOLERATE_ALL))  # fmt: skip
        return pods

    def _bind_all(self, requests: Sequence[Request]) -> list[int]:
        bound = []
        largest = {k: self._largest_free(k) for k in (False, True)}
        for request in requests:
            units = slices(request.gpus)
            if units <= largest[request.on_spot] and self._bind(
                request.index, units, request.on_spot
            ):
                bound.append(request.index)
                largest[request.on_spot] = self._largest_free(request.on_spot)
        return bound

    def _largest_free(self, on_spot: bool) -> int:
        return max((n.free for p in self.pools if p.spot == on_spot for n in p.nodes.values()),
                   default=0)  # fmt: skip

    def release(self, index: int, now: float) -> None:
        """Job ``index``'s run ended (nothing if its node was reclaimed)."""
        placed = self.where.pop(index, None)
        if placed is None:
            return
        pool, node = placed
        node.free += node.jobs.pop(index)
        if not node.jobs:
            node.idle_since = now
            self.schedule(now + self._idle_time(pool))

    def _bind(self, index: int, units: int, on_spot: bool) -> bool:
        """Best fit: the fullest node of the capacity type with room (then by name)."""
        fits = [(n.free, p.name, n.name, p, n) for p in self.pools if p.spot == on_spot
                for n in p.nodes.values() if n.free >= units]  # fmt: skip
        if not fits:
            return False
        *_, pool, node = min(fits, key=lambda f: f[:3])
        node.free -= units
        node.jobs[index] = units
        node.idle_since = None
        self.where[index] = (pool, node)
        return True

    # --- Capacity --------------------------------------------------------------------------------
    def reclaim(self, gpus: float, now: float) -> list[int]:
        """Spot capacity is now ``gpus``: the newest spot nodes over it are closed; the runs
        they held, to preempt (newest node first)."""
        self.spot_gpus = gpus
        victims: list[int] = []
        spot = [p for p in self.pools if p.spot]
        held = sum(p.gpus * len(p.nodes) for p in spot)
        newest = sorted(((n.opened, p.name, n.name, p, n) for p in spot for n in p.nodes.values()),
                        key=lambda f: f[:3], reverse=True)  # fmt: skip
        for *_, pool, node in newest:
            if held <= gpus + 1e-9:
                break
            held -= pool.gpus
            victims.extend(node.jobs)
            for job in node.jobs:
                del self.where[job]
            self._close(pool, node, now)
        return victims

    def review(self, now: float) -> None:
        """Scale down what has been idle long enough (no work is pending: the engine has just
        placed what it could), and open pools up to their minNodes."""
        decisions = autoscale(self._views(now), [], moment(now))
        self._apply(decisions, now)
        removed = any(d.remove for d in decisions)
        for pool in self.pools:
            idle = [n.idle_since for n in pool.nodes.values() if n.idle_since is not None]
            if idle and len(pool.nodes) > pool.model.spec.min_nodes:
                # Idle nodes left (maxStep, cooldown): look again when the next may go; at
                # once only after a removal, so that a review always moves on.
                last = max((t for t in (pool.last_up, pool.last_down) if t is not None),
                           default=now)  # fmt: skip
                cooldown = last + pool.model.spec.scale_down.cooldown.total_seconds()
                soonest = now if removed else now + 1.0
                self.schedule(max(min(idle) + self._idle_time(pool), cooldown, soonest))

    def close(self, now: float) -> None:
        """Bill every node still open up to ``now``."""
        for pool in self.pools:
            for node in list(pool.nodes.values()):
                self._close(pool, node, now)

    # --- Autoscaler ------------------------------------------------------------------------------
    def _views(self, now: float) -> list[PoolView]:
        limits = self._spot_limits()
        return [self._view(pool, limits.get(pool.name), now) for pool in self.pools]

    def _view(self, pool: _Pool, max_nodes: int | None, now: float) -> PoolView:
        model = pool.model
        if max_nodes is not None:  # a spot pool: the trace's capacity bounds minNodes too
            bounds = {"max_nodes": max_nodes, "min_nodes": min(model.spec.min_nodes, max_nodes)}
            model = model.model_copy(update={"spec": model.spec.model_copy(update=bounds)})
        nodes = tuple(
            PoolNode(n.name, True, pool.size, pool.size - n.free,
                     None if n.idle_since is None else moment(n.idle_since))
            for n in pool.nodes.values()
        )  # fmt: skip
        # Exact decimals: pools at the same price per GPU tie (then by name), whatever the size.
        per_gpu = self.prices.spot_at(now) if pool.spot else self.prices.on_demand
        return PoolView(
            model, nodes, len(nodes), Decimal(str(per_gpu)) * pool.gpus, pool.rules,
            last_scale_up=None if pool.last_up is None else moment(pool.last_up),
            last_scale_down=None if pool.last_down is None else moment(pool.last_down),
            slices_per_gpu=SLICES,
        )  # fmt: skip

    def _spot_limits(self) -> dict[str, int]:
        """Each spot pool's node limit: its maxNodes, and the nodes it has plus as many more as
        the capacity trace's GPUs not yet held by any spot pool make up."""
        spot = [p for p in self.pools if p.spot]
        left = self.spot_gpus - sum(p.gpus * len(p.nodes) for p in spot)
        return {
            p.name: min(
                p.model.spec.max_nodes, len(p.nodes) + max(math.floor(left / p.gpus + 1e-9), 0)
            )
            for p in spot
        }

    def _may_grow(self, pool: _Pool, now: float) -> bool:
        """Whether ``pool`` may open a node now; held only by its scale-up cooldown, it asks to
        be looked at again when that ends."""
        spec = pool.model.spec
        limit = self._spot_limits()[pool.name] if pool.spot else spec.max_nodes
        if len(pool.nodes) >= limit:
            return False
        if pool.last_up is not None:
            until = pool.last_up + spec.scale_up.cooldown.total_seconds()
            if now < until:
                self.schedule(until)
                return False
        return True

    def _apply(self, decisions: Sequence[PoolDecision], now: float) -> None:
        by_name = {p.name: p for p in self.pools}
        for decision in decisions:
            pool = by_name[decision.pool]
            for name in decision.remove:
                self._close(pool, pool.nodes[name], now)
            if decision.remove:
                pool.last_down = now
            for _ in range(decision.to_nodes - decision.from_nodes):
                pool.opened += 1
                name = f"{pool.name}-{pool.opened}"
                pool.nodes[name] = _Node(name, now, pool.size, idle_since=now)
                self.schedule(now + self._idle_time(pool))
            if decision.to_nodes > decision.from_nodes:
                pool.last_up = now

    def _close(self, pool: _Pool, node: _Node, now: float) -> None:
        del pool.nodes[node.name]
        if now > node.opened:
            self.bill(pool.gpus, node.opened, now, pool.spot)

    def _idle_time(self, pool: _Pool) -> float:
        idle = pool.rules.scale_down_idle_time or pool.model.spec.scale_down.idle_time
        return idle.total_seconds()


def check_pools(governance: Governance, jobs: Sequence[SimJob]) -> None:
    """With node pools, every job must fit an on-demand node (the one capacity every policy may
    fall back to); :class:`PolicyError` says which does not."""
    pools = governance.pools
    if not pools:
        return
    on_demand = [p.spec.gpus_per_node for p in pools if p.spec.capacity_type != CapacityType.SPOT]
    if not on_demand:
        raise PolicyError("GPUNodePools: no on-demand GPUNodePool; every policy needs one")
    largest = max(on_demand)
    for job in jobs:
        if job.gpus > largest:
            raise PolicyError(
                f"job {job.name} needs {job.gpus:g} GPUs, more than any on-demand GPUNodePool's "
                f"node ({largest} gpusPerNode)"
            )


def _rules(policy: CostPolicy | None) -> NodePoolRules:
    if policy is None or policy.spec.node_pools is None:
        return NodePoolRules()
    return policy.spec.node_pools


def _selector(on_spot: bool) -> dict[str, str]:
    value = _CAPACITY.spot if on_spot else _CAPACITY.on_demand
    return {_CAPACITY.key: value or ""}
