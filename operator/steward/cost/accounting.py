"""Cost, energy and carbon of one window, per node, pod, workload, and left idle. Pure.

Formulas (every reported figure is one of these, summed over the window's covered steps):

- **Node cost** of step ``i``: ``price(node, t_i - step) x step / 3600`` for every step the node
  reported GPU capacity; the price and its source come from the catalog.
- **Pod cost**: the node's step cost x the pod's GPU share, ``gpus_pod / gpus_node`` (requested
  GPUs; shares are scaled down if pods claim more than the node has). With
  :attr:`Attribution.UTILIZATION`, the share is further multiplied by the pod's mean GPU
  utilisation that step, so GPUs held but not used count as idle.
- **Idle cost** of a node: its cost minus what its pods were charged. Reported, never spread.
- **Energy** of a GPU in step ``i``: the difference of DCGM's energy counter between ``t_{i-1}``
  and ``t_i`` (a counter reset counts from zero), else power x step when the counter is absent.
  It goes to the pod holding the GPU at ``t_i``, else to the node's idle. Facility energy is
  GPU energy x the region's PUE; carbon is facility kWh x the region's gCO2e/kWh.
- **GPU utilisation** of a pod: ``sum(step x utilisation) / sum(step)`` over the steps its GPUs
  reported utilisation (``busy_gpu_seconds / measured_gpu_seconds``); pod-only, like requests.
- **Electricity cost** for nodes priced per GPU-hour (on-premises): facility kWh x the region's
  electricity price, added to whoever the energy went to. Cloud prices include it.

Steps outside ``Usage.covered`` (a source down, Prometheus down or behind) are not accounted at
all: they are reported as uncovered seconds, so missing data lowers no figure silently and
raises none.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field, fields, replace
from datetime import datetime, timedelta
from decimal import Context, Decimal, localcontext
from enum import StrEnum
from typing import Final, Self

from steward.api.v1alpha1.common import CapacityType
from steward.cost.catalog import PriceCatalog
from steward.cost.latency import Buckets, increase, merged, window_buckets
from steward.cost.usage import PodKey, PodUsage, Series, Usage, WorkloadRef

ZERO: Final = Decimal(0)
SECONDS_PER_HOUR: Final = Decimal(3600)
JOULES_PER_KWH: Final = Decimal(3_600_000)
#: Working precision: far beyond any bill, so sums of millions of steps do not drift.
PRECISION: Final = 50
#: Sums and differences of amounts, wherever they happen, at the working precision.
_EXACT: Final = Context(prec=PRECISION)


class Attribution(StrEnum):
    """How a node's cost is shared among its pods."""

    REQUESTED = "Requested"
    UTILIZATION = "Utilization"


@dataclass(frozen=True)
class Amounts:
    """Figures over some time; all additive.

    ``kg_co2e`` covers ``kwh - kwh_without_carbon``: energy in regions with no intensity in
    the catalog has no carbon figure rather than a made-up one.
    """

    spot_usd: Decimal = ZERO
    on_demand_usd: Decimal = ZERO
    kwh: Decimal = ZERO
    kg_co2e: Decimal = ZERO
    kwh_without_carbon: Decimal = ZERO
    gpu_seconds: Decimal = ZERO
    unpriced_gpu_seconds: Decimal = ZERO
    requests: Decimal = ZERO
    measured_gpu_seconds: Decimal = ZERO
    busy_gpu_seconds: Decimal = ZERO

    @property
    def usd(self) -> Decimal:
        return _EXACT.add(self.spot_usd, self.on_demand_usd)

    def __add__(self, other: Amounts) -> Amounts:
        return Amounts(
            *(_EXACT.add(getattr(self, f.name), getattr(other, f.name)) for f in fields(self))
        )

    def __sub__(self, other: Amounts) -> Amounts:
        return Amounts(
            *(_EXACT.subtract(getattr(self, f.name), getattr(other, f.name)) for f in fields(self))
        )

    @classmethod
    def total(cls, parts: Iterable[Amounts]) -> Self:
        result = cls()
        for part in parts:
            result = result + part  # type: ignore[assignment]
        return result


@dataclass(frozen=True)
class Ledger:
    """The accounting of ``(start, end]``.

    ``nodes`` is each node's whole cost; ``idle`` the part no pod was charged, so for every
    node ``nodes[n] == idle[n] + sum of its pods`` (exactly, in ``Decimal``).
    """

    start: datetime
    end: datetime
    pods: dict[PodKey, Amounts]
    workloads: dict[WorkloadRef, Amounts]
    nodes: dict[str, Amounts]
    idle: dict[str, Amounts]
    prices: dict[str, tuple[str, ...]]
    covered_seconds: int
    uncovered_seconds: int
    #: Per serving workload, per model variant its pods serve ("" for pods that name none):
    #: their request latency histogram over the covered steps.
    latency: dict[WorkloadRef, dict[str, Buckets]] = field(default_factory=dict)

    def for_workloads(self, refs: Iterable[WorkloadRef]) -> Amounts:
        return Amounts.total(self.workloads.get(ref, Amounts()) for ref in refs)


@dataclass
class _Tally:
    """Mutable sums while one window is accounted."""

    pods: dict[PodKey, Amounts] = field(default_factory=lambda: defaultdict(Amounts))
    nodes: dict[str, Amounts] = field(default_factory=lambda: defaultdict(Amounts))
    prices: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))

    def add(
        self, table: dict[str, Amounts] | dict[PodKey, Amounts], key: object, amount: Amounts
    ) -> None:
        table[key] = table[key] + amount  # type: ignore[index]


def account(
    usage: Usage,
    catalog: PriceCatalog,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    attribution: Attribution = Attribution.REQUESTED,
) -> Ledger:
    """Account the window's covered steps in ``(since, until]`` (default: the whole window)."""
    grid = usage.grid
    first = grid.first_step_after(since) if since is not None else 1
    last = grid.steps if until is None else min(grid.first_step_after(until) - 1, grid.steps)
    steps = list(range(first, last + 1))
    covered = [i for i in steps if i in usage.covered]
    with localcontext() as context:
        context.prec = PRECISION
        tally = _Tally()
        holders = _holders(usage)
        _charge_nodes(usage, catalog, covered, tally, attribution=attribution, holders=holders)
        _charge_energy(usage, catalog, covered, tally)
        _count_requests(usage, covered, tally)
        _measure_utilization(usage, covered, tally)
        owners = usage.workloads_of_pods()
        ledger = _ledger(usage, steps, covered, tally, owners)
    return replace(ledger, latency=_latency(usage, covered, owners))


_Holders = dict[tuple[PodKey, int], list[float]]


def _holders(usage: Usage) -> _Holders:
    """(pod, step) -> utilisation of each GPU the pod held that step."""
    result: _Holders = defaultdict(list)
    for gpu in usage.gpus:
        for index, pod in gpu.holders.items():
            utilization = gpu.utilization_percent.get(index)
            if utilization is not None:
                result[(pod, index)].append(utilization)
    return result


def _charge_nodes(
    usage: Usage,
    catalog: PriceCatalog,
    covered: list[int],
    tally: _Tally,
    *,
    attribution: Attribution,
    holders: _Holders,
) -> None:
    grid = usage.grid
    step = Decimal(grid.step_seconds)
    pods_on: dict[str, list[PodUsage]] = defaultdict(list)
    for pod in usage.pods:
        pods_on[pod.node].append(pod)
    for node in usage.nodes:
        spot = node.identity.capacity == CapacityType.SPOT
        for index in covered:
            capacity = node.gpus.get(index)
            if capacity is None or capacity <= 0:
                continue
            moment = grid.time(index) - timedelta(seconds=grid.step_seconds)
            price = catalog.price(node.identity, moment)
            tally.prices[node.name].add(price.source)
            gpu_seconds = _decimal(capacity) * step
            if price.usd_per_hour is None:
                tally.add(
                    tally.nodes,
                    node.name,
                    Amounts(gpu_seconds=gpu_seconds, unpriced_gpu_seconds=gpu_seconds),
                )
                for pod, gpus in _on_node(pods_on[node.name], index):
                    held = _decimal(gpus) * step
                    tally.add(
                        tally.pods, pod.key, Amounts(gpu_seconds=held, unpriced_gpu_seconds=held)
                    )
                continue
            usd = price.usd_per_hour * step / SECONDS_PER_HOUR
            tally.add(tally.nodes, node.name, _money(usd, spot, gpu_seconds))
            claimed = sum(gpus for _, gpus in _on_node(pods_on[node.name], index))
            denominator = _decimal(max(claimed, capacity))
            for pod, gpus in _on_node(pods_on[node.name], index):
                share = _decimal(gpus) / denominator
                if attribution == Attribution.UTILIZATION:
                    share *= _utilization(holders.get((pod.key, index)))
                tally.add(tally.pods, pod.key, _money(usd * share, spot, _decimal(gpus) * step))


def _on_node(pods: list[PodUsage], index: int) -> list[tuple[PodUsage, float]]:
    return [(pod, pod.gpus[index]) for pod in pods if pod.gpus.get(index, 0) > 0]


def _utilization(samples: list[float] | None) -> Decimal:
    """Mean utilisation of a pod's GPUs as a fraction; 1 when unknown (charge as requested)."""
    if not samples:
        return Decimal(1)
    mean = sum(min(max(s, 0.0), 100.0) for s in samples) / len(samples)
    return _decimal(mean) / 100


def _money(usd: Decimal, spot: bool, gpu_seconds: Decimal) -> Amounts:
    if spot:
        return Amounts(spot_usd=usd, gpu_seconds=gpu_seconds)
    return Amounts(on_demand_usd=usd, gpu_seconds=gpu_seconds)


def _charge_energy(usage: Usage, catalog: PriceCatalog, covered: list[int], tally: _Tally) -> None:
    nodes = {node.name: node for node in usage.nodes}
    pods = {pod.key for pod in usage.pods}
    for gpu in usage.gpus:
        node = nodes.get(gpu.node)
        if node is None:
            continue
        factors = catalog.factors(node.identity.region)
        price = catalog.price(node.identity, usage.grid.start)
        spot = node.identity.capacity == CapacityType.SPOT
        for index in covered:
            joules = _joules(
                gpu.energy_millijoules, gpu.power_watts, index, usage.grid.step_seconds
            )
            if joules is None:
                continue
            kwh = joules / JOULES_PER_KWH * _decimal(factors.pue)
            if factors.grams_co2e_per_kwh is None:
                amount = Amounts(kwh=kwh, kwh_without_carbon=kwh)
            else:
                amount = Amounts(kwh=kwh, kg_co2e=kwh * _decimal(factors.grams_co2e_per_kwh) / 1000)
            if not price.includes_energy and factors.electricity_usd_per_kwh is not None:
                amount = amount + _money(kwh * factors.electricity_usd_per_kwh, spot, ZERO)
            tally.add(tally.nodes, gpu.node, amount)
            holder = gpu.holders.get(index)
            if holder is not None and holder in pods:  # else it stays in the node's idle
                tally.add(tally.pods, holder, amount)


def _joules(counter: Series, power: Series, index: int, step_seconds: int) -> Decimal | None:
    """Energy of one GPU in step ``index``: counter difference, else power x step."""
    now, before = counter.get(index), counter.get(index - 1)
    if now is not None and before is not None:
        delta = now - before if now >= before else now  # a reset counts from zero
        return _decimal(delta) / 1000
    watts = power.get(index)
    if watts is None:
        return None
    return _decimal(watts) * step_seconds


def _count_requests(usage: Usage, covered: list[int], tally: _Tally) -> None:
    for key, counter in usage.requests.items():
        total = _decimal(increase(counter, covered))
        if total:
            tally.add(tally.pods, key, Amounts(requests=total))


def _latency(
    usage: Usage, covered: list[int], workloads: dict[PodKey, WorkloadRef]
) -> dict[WorkloadRef, dict[str, Buckets]]:
    """Each workload's pods' latency buckets over the covered steps, merged per variant."""
    parts: dict[WorkloadRef, dict[str, list[Buckets]]] = defaultdict(lambda: defaultdict(list))
    for key, buckets in window_buckets(usage, covered).items():
        owner = usage.owners.get(key)
        ref = workloads.get(key, WorkloadRef("", key[0], key[1]))
        parts[ref][owner.variant if owner else ""].append(buckets)
    return {
        ref: {variant: merged(pods) for variant, pods in variants.items()}
        for ref, variants in parts.items()
    }


def node_utilization(usage: Usage) -> dict[str, tuple[float, int]]:
    """Per node: the sum of its GPUs' DCGM utilisation samples (percent, clamped to 0-100)
    over the window's covered steps, and their count; a node with no samples is absent."""
    sums: dict[str, tuple[float, int]] = {}
    for gpu in usage.gpus:
        samples = [gpu.utilization_percent.get(i) for i in sorted(usage.covered)]
        values = [min(max(v, 0.0), 100.0) for v in samples if v is not None]
        if values:
            total, count = sums.get(gpu.node, (0.0, 0))
            sums[gpu.node] = (total + sum(values), count + len(values))
    return sums


def _measure_utilization(usage: Usage, covered: list[int], tally: _Tally) -> None:
    step = _decimal(usage.grid.step_seconds)
    pods = {pod.key for pod in usage.pods}
    for gpu in usage.gpus:
        for index in covered:
            holder, percent = gpu.holders.get(index), gpu.utilization_percent.get(index)
            if holder in pods and percent is not None:
                busy = step * _decimal(min(max(percent, 0.0), 100.0)) / 100
                tally.add(
                    tally.pods, holder, Amounts(measured_gpu_seconds=step, busy_gpu_seconds=busy)
                )


def _ledger(
    usage: Usage,
    steps: list[int],
    covered: list[int],
    tally: _Tally,
    owners: dict[PodKey, WorkloadRef],
) -> Ledger:
    grid = usage.grid
    gpu_pods = {pod.key: pod for pod in usage.pods}
    workloads: dict[WorkloadRef, Amounts] = defaultdict(Amounts)
    charged: dict[str, Amounts] = defaultdict(Amounts)
    for key, amount in tally.pods.items():
        pod = gpu_pods.get(key)
        ref = owners.get(key, WorkloadRef("", key[0], key[1]))
        workloads[ref] = workloads[ref] + amount
        if pod is not None:
            charged[pod.node] = charged[pod.node] + _pod_only_removed(amount)
    idle = {name: total - charged[name] for name, total in tally.nodes.items()}
    start = grid.time(steps[0] - 1) if steps else grid.end
    return Ledger(
        start=start,
        end=grid.time(steps[-1]) if steps else grid.end,
        pods=dict(tally.pods),
        workloads=dict(workloads),
        nodes=dict(tally.nodes),
        idle=idle,
        prices={name: tuple(sorted(sources)) for name, sources in tally.prices.items()},
        covered_seconds=len(covered) * grid.step_seconds,
        uncovered_seconds=(len(steps) - len(covered)) * grid.step_seconds,
    )


#: Figures only pods have: nodes are not charged them, so they never count into idle.
_POD_ONLY: Final = frozenset({"requests", "measured_gpu_seconds", "busy_gpu_seconds"})


def _pod_only_removed(amount: Amounts) -> Amounts:
    return Amounts(
        **{f.name: getattr(amount, f.name) for f in fields(amount) if f.name not in _POD_ONLY}
    )


def _decimal(value: float) -> Decimal:
    """A sample as a decimal, through its shortest repr (no binary tail)."""
    return Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
