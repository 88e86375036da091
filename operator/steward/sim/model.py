"""What the simulator replays: jobs, spot capacity, prices, and how a trace maps onto them.

Times are seconds from the start of the workload trace; money is USD, energy kWh. Floats keep
the replay fast (8k jobs over 149 days in seconds); every figure in the report is a sum of
``GPUs x seconds x price`` terms the engine records per run segment.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field
from itertools import accumulate

from steward.api.v1alpha1.common import Priority


@dataclass(frozen=True)
class SimJob:
    """One unit of work from a workload trace.

    Attributes:
        name: The trace's id.
        arrival: When it is submitted.
        gpus: GPUs it holds while running (fractional for shared GPUs, e.g. 0.5).
        work: Seconds of useful progress it needs.
        spot_eligible: May run on interruptible capacity (from the trace's QoS or job type).
        checkpointed: Saves progress every ``checkpoint_interval`` of work (else a preemption
            loses everything).
        deadline: When it should be done (``None``: no deadline).
        group: The namespace it runs in and is charged to (budget and policy scopes select
            by it).
        priority: Its TrainingJob priority (the governor's ladder acts by priority).
    """

    name: str
    arrival: float
    gpus: float
    work: float
    spot_eligible: bool
    checkpointed: bool
    deadline: float | None = None
    group: str = "default"
    priority: Priority = Priority.NORMAL


@dataclass(frozen=True)
class CapacityTrace:
    """Spot capacity over time: ``gpus[i]`` GPUs obtainable from ``i * tick`` seconds on.

    Past its end the trace repeats from the start (long workloads over short traces).
    """

    name: str
    tick: float
    gpus: tuple[float, ...]

    def changes(self, until: float) -> list[tuple[float, float]]:
        """``(time, GPUs)`` at time 0 and at every change before ``until``."""
        result = [(0.0, self.gpus[0])]
        period = self.tick * len(self.gpus)
        cycle = 0
        while True:
            base = cycle * period
            for i, value in enumerate(self.gpus):
                moment = base + i * self.tick
                if moment >= until:
                    return result
                if value != result[-1][1]:
                    result.append((moment, value))
            cycle += 1

    @property
    def mean_gpus(self) -> float:
        return sum(self.gpus) / len(self.gpus)


@dataclass(frozen=True)
class PriceSeries:
    """Spot USD per GPU-hour as a step function (``prices[i]`` from ``times[i]`` on; before the
    first time, the first price), and the on-demand USD per GPU-hour."""

    name: str
    on_demand: float
    times: tuple[float, ...]
    prices: tuple[float, ...]
    _integral: tuple[float, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.times or len(self.times) != len(self.prices):
            raise ValueError("a price series needs as many times as prices, at least one")
        if any(b < a for a, b in zip(self.times, self.times[1:], strict=False)):
            raise ValueError("price times must ascend")
        if any(p < 0 for p in self.prices) or self.on_demand < 0:
            raise ValueError("prices cannot be negative")
        steps = [
            (self.times[i + 1] - self.times[i]) * self.prices[i] for i in range(len(self.times) - 1)
        ]
        object.__setattr__(self, "_integral", (0.0, *accumulate(steps)))

    @classmethod
    def constant(cls, name: str, on_demand: float, spot: float) -> PriceSeries:
        return cls(name, on_demand, (0.0,), (spot,))

    def spot_at(self, moment: float) -> float:
        return self.prices[max(bisect_right(self.times, moment) - 1, 0)]

    @property
    def cheapest_spot(self) -> float:
        return min(self.prices)

    def spot_usd_per_gpu(self, start: float, end: float) -> float:
        """USD one GPU costs on spot over ``[start, end]``: the price's integral / 3600."""
        return (self._price_seconds(end) - self._price_seconds(start)) / 3600.0

    def _price_seconds(self, moment: float) -> float:
        first = self.times[0]
        if moment <= first:
            return (moment - first) * self.prices[0]
        i = bisect_right(self.times, moment) - 1
        return self._integral[i] + (moment - self.times[i]) * self.prices[i]


@dataclass(frozen=True)
class EnergyModel:
    """Facility energy and emissions of a running GPU: ``watts`` drawn at the workload's
    utilisation (from a measured power curve; ``idle_watts`` by a GPU no pod holds, on a node
    that is up), times the data centre's ``pue``, and ``grams_co2e_per_kwh`` of the grid."""

    watts: float
    pue: float
    grams_co2e_per_kwh: float
    idle_watts: float = 0.0

    def kwh(self, gpu_seconds: float) -> float:
        return gpu_seconds * self.watts * self.pue / 3.6e6

    def idle_kwh(self, gpu_seconds: float) -> float:
        return gpu_seconds * self.idle_watts * self.pue / 3.6e6
