"""The replay: an event-driven simulated cluster with unlimited on-demand GPUs and the spot
GPUs the capacity trace makes obtainable.

Events: a job arrives; a run finishes; spot capacity changes; a job's wait for spot ends.
When capacity drops below what spot runs hold, the most recently started runs are preempted
first (the cloud reclaims whole instances; which ones is not in the traces, and last-in keeps
long-running work alive, stated in docs/simulator.md). Freed spot capacity goes to waiting jobs
first come, first served.

A run of a job with ``R`` seconds of work left, started at ``s``, takes the restart latency
``L`` (attempts after the first), then works, pausing ``O`` seconds at each checkpoint every
``C`` seconds of work: it finishes at ``s + L + R + O x (ceil(R / C) - 1)``. Preempted at ``p``,
it keeps ``C x floor((p - s - L) / (C + O))`` of progress (nothing without checkpoints). A run's
cost is its GPUs x its wall time x the price in force (spot: the integral of the price series),
whether it made progress or not.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import IntEnum

from steward.policy.training import EndReason
from steward.sim.mapping import SimMapping
from steward.sim.model import CapacityTrace, EnergyModel, PriceSeries, SimJob
from steward.sim.strategies import History, Strategy, Want

DAY = 86400.0


class _Kind(IntEnum):  # the order of events at the same moment
    FINISH = 0
    CAPACITY = 1
    WAIT_OVER = 2
    ARRIVE = 3


@dataclass
class _Run:
    job: int
    start: float
    on_spot: bool
    latency: float
    work_left: float
    finish: float


@dataclass
class _JobState:
    history: History = field(default_factory=History)
    progress: float = 0.0
    attempts: int = 0
    run: _Run | None = None
    waiting_since: float | None = None
    done_at: float | None = None


@dataclass
class PolicyResult:
    """What one policy did with the whole trace."""

    policy: str
    usd: float = 0.0
    spot_usd: float = 0.0
    gpu_hours: float = 0.0
    spot_gpu_hours: float = 0.0
    kwh: float = 0.0
    kg_co2e: float = 0.0
    preemptions: int = 0
    lost_gpu_hours: float = 0.0
    deadline_misses: int = 0
    jobs: int = 0
    unfinished: int = 0
    jct_mean_hours: float = 0.0
    jct_p95_hours: float = 0.0
    budget_breaches: int = 0
    daily_usd: list[float] = field(default_factory=list)
    daily_spot_usd: list[float] = field(default_factory=list)

    @property
    def spot_share(self) -> float:
        """Share of GPU-hours on spot."""
        return self.spot_gpu_hours / self.gpu_hours if self.gpu_hours else 0.0


@dataclass(frozen=True)
class Inputs:
    """Everything a replay reads."""

    jobs: Sequence[SimJob]
    capacity: CapacityTrace
    prices: PriceSeries
    mapping: SimMapping
    energy: EnergyModel


class Replay:
    """One policy over the inputs; :meth:`run` returns its result."""

    def __init__(self, inputs: Inputs, strategy: Strategy) -> None:
        self.inputs = inputs
        self.strategy = strategy
        self.mapping = inputs.mapping
        self.states = [_JobState() for _ in inputs.jobs]
        self.result = PolicyResult(strategy.name, jobs=len(inputs.jobs))
        self.events: list[tuple[float, int, int, int, float]] = []
        self._seq = 0
        self.capacity = 0.0
        self.spot_used = 0.0
        self.spot_runs: list[int] = []  # job indices, in start order
        self.waiting: dict[int, None] = {}  # job indices, first come first served

    # --- Driving ---------------------------------------------------------------------------------
    def run(self, progress: Callable[[float], None] | None = None) -> PolicyResult:
        jobs = self.inputs.jobs
        for index, job in enumerate(jobs):
            self._push(job.arrival, _Kind.ARRIVE, index)
        horizon = _horizon(jobs)
        for moment, gpus in self.inputs.capacity.changes(horizon):
            self._push(moment, _Kind.CAPACITY, -1, gpus)
        while self.events:
            now, kind, _, index, value = heapq.heappop(self.events)
            self._handle(_Kind(kind), index, value, now)
            if progress is not None:
                progress(now)
        self._close()
        return self.result

    def _push(self, moment: float, kind: _Kind, index: int, value: float = 0.0) -> None:
        self._seq += 1
        heapq.heappush(self.events, (moment, int(kind), self._seq, index, value))

    def _handle(self, kind: _Kind, index: int, value: float, now: float) -> None:
        if kind == _Kind.ARRIVE:
            self._place(index, now)
        elif kind == _Kind.FINISH:
            state = self.states[index]
            if state.run is not None and state.run.finish == value:
                self._finish(index, now)
                self._admit_waiting(now)
        elif kind == _Kind.CAPACITY:
            self.capacity = value
            self._preempt_over_capacity(now)
            self._admit_waiting(now)
        elif kind == _Kind.WAIT_OVER:
            state = self.states[index]
            if index in self.waiting and state.waiting_since == value:
                del self.waiting[index]
                state.waiting_since = None
                state.history.ended.append(EndReason.SPOT_UNAVAILABLE)
                self._place(index, now)

    # --- Placing ---------------------------------------------------------------------------------
    def _place(self, index: int, now: float) -> None:
        job, state = self.inputs.jobs[index], self.states[index]
        want = self.strategy.want(job, state.history, now)
        fits = self.spot_used + job.gpus <= self.capacity
        if want == Want.ON_DEMAND or (want == Want.SPOT_OR_ON_DEMAND and not fits):
            self._start(index, now, on_spot=False)
        elif fits and not self.waiting:
            self._start(index, now, on_spot=True)
        elif want == Want.SPOT_OR_ON_DEMAND:
            self._start(index, now, on_spot=False)
        else:
            self.waiting[index] = None
            state.waiting_since = now
            limit = self.strategy.wait_limit(job, now)
            if limit is not None:
                self._push(limit, _Kind.WAIT_OVER, index, now)

    def _admit_waiting(self, now: float) -> None:
        for index in list(self.waiting):
            job = self.inputs.jobs[index]
            if self.spot_used + job.gpus <= self.capacity:
                del self.waiting[index]
                self.states[index].waiting_since = None
                self._start(index, now, on_spot=True)

    def _start(self, index: int, now: float, *, on_spot: bool) -> None:
        job, state = self.inputs.jobs[index], self.states[index]
        state.attempts += 1
        latency = self.mapping.restart_latency_seconds if state.attempts > 1 else 0.0
        left = job.work - state.progress
        finish = now + latency + left + self._overhead(job, left)
        state.run = _Run(index, now, on_spot, latency, left, finish)
        if on_spot:
            self.spot_used += job.gpus
            self.spot_runs.append(index)
        self._push(finish, _Kind.FINISH, index, finish)

    def _checkpoints(self, job: SimJob) -> bool:
        return job.checkpointed and self.strategy.keeps_checkpoints

    def _overhead(self, job: SimJob, left: float) -> float:
        if not self._checkpoints(job):
            return 0.0
        interval = self.mapping.checkpoint_interval_seconds
        return self.mapping.checkpoint_overhead_seconds * max(math.ceil(left / interval) - 1, 0)

    # --- Ending runs -----------------------------------------------------------------------------
    def _finish(self, index: int, now: float) -> None:
        state = self.states[index]
        self._end_run(index, now)
        state.progress = self.inputs.jobs[index].work
        state.done_at = now

    def _preempt_over_capacity(self, now: float) -> None:
        while self.spot_used > self.capacity + 1e-9 and self.spot_runs:
            index = self.spot_runs[-1]
            job, state = self.inputs.jobs[index], self.states[index]
            run = state.run
            assert run is not None
            kept = self._kept(job, run, now)
            self.result.preemptions += 1
            self.result.lost_gpu_hours += job.gpus * (now - run.start - kept) / 3600
            self._end_run(index, now)
            state.progress += min(kept, run.work_left)
            state.history.ended.append(EndReason.PREEMPTED)
            self._place(index, now)

    def _kept(self, job: SimJob, run: _Run, now: float) -> float:
        """Progress a preempted run keeps: work up to its last completed checkpoint."""
        if not self._checkpoints(job):
            return 0.0
        worked = now - run.start - run.latency
        interval = self.mapping.checkpoint_interval_seconds
        cycle = interval + self.mapping.checkpoint_overhead_seconds
        return interval * math.floor(max(worked, 0.0) / cycle)

    def _end_run(self, index: int, now: float) -> None:
        job, state = self.inputs.jobs[index], self.states[index]
        run = state.run
        assert run is not None
        state.run = None
        if run.on_spot:
            self.spot_used -= job.gpus
            self.spot_runs.remove(index)
        self._charge(job, run.start, now, on_spot=run.on_spot)

    def _charge(self, job: SimJob, start: float, end: float, *, on_spot: bool) -> None:
        """Add a run's cost, GPU-hours and energy, split by day."""
        result, prices = self.result, self.inputs.prices
        gpu_seconds = job.gpus * (end - start)
        result.gpu_hours += gpu_seconds / 3600
        kwh = self.inputs.energy.kwh(gpu_seconds)
        result.kwh += kwh
        result.kg_co2e += kwh * self.inputs.energy.grams_co2e_per_kwh / 1000
        if on_spot:
            result.spot_gpu_hours += gpu_seconds / 3600
        moment = start
        while moment < end:
            day = int(moment // DAY)
            until = min(end, (day + 1) * DAY)
            if on_spot:
                usd = job.gpus * prices.spot_usd_per_gpu(moment, until)
            else:
                usd = job.gpus * prices.on_demand * (until - moment) / 3600
            _add_day(result.daily_usd, day, usd)
            _add_day(result.daily_spot_usd, day, usd if on_spot else 0.0)
            result.usd += usd
            result.spot_usd += usd if on_spot else 0.0
            moment = until

    def _close(self) -> None:
        result, jobs = self.result, self.inputs.jobs
        times = []
        for job, state in zip(jobs, self.states, strict=True):
            if state.done_at is None:
                result.unfinished += 1
                continue
            times.append((state.done_at - job.arrival) / 3600)
            if job.deadline is not None and state.done_at > job.deadline + 1e-6:
                result.deadline_misses += 1
        result.jct_mean_hours, result.jct_p95_hours = _mean_p95(times)


def lower_bound(inputs: Inputs) -> PolicyResult:
    """Every GPU-hour of work at the cheapest spot price observed, no preemption, no waiting."""
    result = PolicyResult("lower-bound", jobs=len(inputs.jobs))
    cheapest = inputs.prices.cheapest_spot
    times = []
    for job in inputs.jobs:
        gpu_seconds = job.gpus * job.work
        result.gpu_hours += gpu_seconds / 3600
        result.spot_gpu_hours += gpu_seconds / 3600
        kwh = inputs.energy.kwh(gpu_seconds)
        result.kwh += kwh
        result.kg_co2e += kwh * inputs.energy.grams_co2e_per_kwh / 1000
        usd = gpu_seconds / 3600 * cheapest
        result.usd += usd
        result.spot_usd += usd
        _add_day(result.daily_usd, int((job.arrival + job.work) // DAY), usd)
        times.append(job.work / 3600)
    result.jct_mean_hours, result.jct_p95_hours = _mean_p95(times)
    return result


def _horizon(jobs: Sequence[SimJob]) -> float:
    """Long enough for every job to finish under any policy (capacity changes beyond it
    cannot matter): the last arrival plus three times the longest job, plus a day."""
    return max(j.arrival for j in jobs) + 3 * max(j.work for j in jobs) + DAY


def _add_day(series: list[float], day: int, usd: float) -> None:
    if day >= len(series):
        series.extend([0.0] * (day + 1 - len(series)))
    series[day] += usd


def _mean_p95(values: list[float]) -> tuple[float, float]:
    if not values:
        return 0.0, 0.0
    ordered = sorted(values)
    rank = max(math.ceil(0.95 * len(ordered)) - 1, 0)  # nearest-rank percentile
    return sum(ordered) / len(ordered), ordered[rank]
