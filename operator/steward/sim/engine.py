"""The replay: an event-driven simulated cluster, either GPUs counted (unlimited on-demand
GPUs and the spot GPUs the capacity trace makes obtainable) or GPU node pools
(:mod:`steward.sim.pools`: nodes the operator's autoscaler opens and closes, billed whole).

Events: a job arrives; a run finishes; a run stops at a checkpoint for the governor; spot
capacity changes; a job's wait for spot ends; the governor ticks (Steward under Budgets or
CostPolicies, :mod:`steward.sim.governance`); the pools are looked at again (idle nodes,
cooldowns).
When capacity drops below what spot runs hold, counted GPUs preempt the most recently started
runs first, pools the runs on the newest spot nodes (the cloud reclaims whole instances; which
ones is not in the traces, and last-in keeps long-running work alive, stated in
docs/simulator.md). Freed capacity goes to waiting jobs first come, first served.

A run of a job with ``R`` seconds of work left, started at ``s``, takes the restart latency
``L`` (attempts after the first), then works, pausing ``O`` seconds at each checkpoint every
``C`` seconds of work: it finishes at ``s + L + R + O x (ceil(R / C) - 1)``. Preempted at ``p``,
it keeps ``C x floor((p - s - L) / (C + O))`` of progress (nothing without checkpoints). A run's
cost is its GPUs x its wall time x the price in force (spot: the integral of the price series),
whether it made progress or not, charged in pieces split at day and Budget period boundaries
(and at governor ticks, which read the spend so far). With pools the bill is the nodes' instead:
every node's GPUs from opening to closing; runs are still charged to their Budgets by the GPUs
they hold, as the operator's accounting does.

Governed (Steward): a job the governor suspends, or whose directive moves it between spot and
on-demand, stops when its next checkpoint is written (``start + L + k x (C + O)``), keeping
``k x C`` of progress, and waits (suspended) or starts again on the other capacity; a new job
``admission`` holds waits for a later tick. Finishing first wins over such a stop.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from typing import Final

from steward.api.directive import GovernorDirective
from steward.api.v1alpha1.trainingjob import TrainingJobPhase
from steward.policy.training import EndReason
from steward.sim.budgets import DAY, BudgetBook, Governance, job_facts
from steward.sim.governance import LiveJob, SimGovernor
from steward.sim.mapping import SimMapping
from steward.sim.model import CapacityTrace, EnergyModel, PriceSeries, SimJob
from steward.sim.pools import NodePools, Request
from steward.sim.strategies import History, Strategy, Want, job_spec

#: Beyond the workload's horizon, how long a governed replay may still run (a job held by
#: BlockNewWork waits for its Budget's period to reset: at most a month).
_GOVERNED_EXTRA: Final = 31 * DAY


class _Kind(IntEnum):  # the order of events at the same moment
    FINISH = 0
    STOP = 1
    CAPACITY = 2
    WAIT_OVER = 3
    GOVERN = 4
    SCALE = 5
    ARRIVE = 6


class _Held(StrEnum):
    """Why a job that is not done has no run and is not waiting for spot."""

    BLOCKED = "blocked"  # admission holds its first attempt
    SUSPENDED = "suspended"  # its directive suspends it


@dataclass
class _Run:
    job: int
    start: float
    on_spot: bool
    latency: float
    work_left: float
    finish: float
    charged_until: float = 0.0
    #: A governor stop at a checkpoint: when, the progress it keeps, and why.
    stop_at: float | None = None
    stop_kept: float = 0.0
    stop_reason: EndReason = EndReason.SUSPENDED


@dataclass
class _JobState:
    history: History = field(default_factory=History)
    progress: float = 0.0
    attempts: int = 0
    run: _Run | None = None
    waiting_since: float | None = None
    done_at: float | None = None
    held: _Held | None = None


@dataclass
class PolicyResult:
    """What one policy did with the whole trace."""

    policy: str
    usd: float = 0.0
    spot_usd: float = 0.0
    gpu_hours: float = 0.0
    spot_gpu_hours: float = 0.0
    #: GPU-hours of the nodes opened, busy or idle (None: no node pools, GPUs counted).
    node_gpu_hours: float | None = None
    kwh: float = 0.0
    kg_co2e: float = 0.0
    preemptions: int = 0
    lost_gpu_hours: float = 0.0
    deadline_misses: int = 0
    jobs: int = 0
    unfinished: int = 0
    jct_mean_hours: float = 0.0
    jct_p95_hours: float = 0.0
    #: Periods over a Budget's limit (None: not a schedule, e.g. the lower bound).
    budget_breaches: int | None = 0
    #: The governor's actions taken (Enforce) or recorded (``Would...``, DryRun), by name.
    governor_actions: dict[str, int] = field(default_factory=dict)
    daily_usd: list[float] = field(default_factory=list)
    daily_spot_usd: list[float] = field(default_factory=list)
    #: Per Budget: USD per day, and the days its periods start on (the burn-down plot).
    budget_daily_usd: dict[str, list[float]] = field(default_factory=dict)
    budget_period_days: dict[str, list[int]] = field(default_factory=dict)

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
    governance: Governance = field(default_factory=Governance)


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
        self.queued: dict[int, float] = {}  # on-demand runs waiting for a node: since when
        self.live: dict[int, None] = {}  # arrived, not done
        self.blocked: dict[int, None] = {}  # held by admission, first come first served
        self.done = 0
        self.horizon = 0.0
        facts = [job_facts(job, self.mapping) for job in inputs.jobs]
        self.book = BudgetBook(inputs.governance.budgets, facts)
        self.pools: NodePools | None = None
        self._reviews: set[float] = set()
        if inputs.governance.pools:
            governance = inputs.governance
            self.result.node_gpu_hours = 0.0
            self.pools = NodePools(governance.pools, governance.policies, inputs.prices,
                                   bill=self._bill, schedule=self._review_at)  # fmt: skip
        self.governor: SimGovernor | None = None
        if strategy.governed and (inputs.governance.budgets or inputs.governance.policies):
            specs = [job_spec(job, self.mapping) for job in inputs.jobs]
            self.governor = SimGovernor(
                inputs.governance, self.book, jobs=inputs.jobs, facts=facts, specs=specs,
                prices=inputs.prices, interval=self.mapping.governor_interval_seconds,
            )  # fmt: skip

    # --- Driving ---------------------------------------------------------------------------------
    def run(self, progress: Callable[[float], None] | None = None) -> PolicyResult:
        jobs = self.inputs.jobs
        for index, job in enumerate(jobs):
            self._push(job.arrival, _Kind.ARRIVE, index)
        horizon = self.horizon = _horizon(jobs) + (_GOVERNED_EXTRA if self.governor else 0.0)
        for moment, gpus in self.inputs.capacity.changes(horizon):
            self._push(moment, _Kind.CAPACITY, -1, gpus)
        if self.governor is not None:
            self._push(self.governor.next_tick(0.0), _Kind.GOVERN, -1)
        self._review_at(0.0)
        now = 0.0
        while self.events:
            now, kind, _, index, value = heapq.heappop(self.events)
            self._handle(_Kind(kind), index, value, now)
            if progress is not None:
                progress(now)
        self._close(now)
        return self.result

    def _push(self, moment: float, kind: _Kind, index: int, value: float = 0.0) -> None:
        self._seq += 1
        heapq.heappush(self.events, (moment, int(kind), self._seq, index, value))

    def _handle(self, kind: _Kind, index: int, value: float, now: float) -> None:
        if kind == _Kind.ARRIVE:
            self._arrive(index, now)
        elif kind == _Kind.GOVERN:
            self._govern(now)
        elif kind == _Kind.STOP:
            self._stop(index, value, now)
        elif kind == _Kind.FINISH:
            state = self.states[index]
            if state.run is not None and state.run.finish == value:
                self._finish(index, now)
                self._admit_waiting(now)
        elif kind == _Kind.CAPACITY:
            self.capacity = value
            self._preempt_over_capacity(now)
            self._admit_waiting(now)
        elif kind == _Kind.SCALE:
            self._reviews.discard(now)
            if self.pools is not None:
                # Removing idle spot nodes can free trace capacity for another spot pool.
                self.pools.review(now)
                self._admit_waiting(now)
        elif kind == _Kind.WAIT_OVER:
            state = self.states[index]
            if index in self.waiting and state.waiting_since == value:
                del self.waiting[index]
                state.waiting_since = None
                state.history.ended.append(EndReason.SPOT_UNAVAILABLE)
                self._place(index, now)

    # --- Placing ---------------------------------------------------------------------------------
    def _arrive(self, index: int, now: float) -> None:
        self.live[index] = None
        if self.governor is not None and not self.governor.admits(index, now):
            self.states[index].held = _Held.BLOCKED
            self.blocked[index] = None
            return
        self._place(index, now)

    def _directive(self, index: int) -> GovernorDirective | None:
        return self.governor.directive(index) if self.governor is not None else None

    def _place(self, index: int, now: float) -> None:
        job, state = self.inputs.jobs[index], self.states[index]
        directive = self._directive(index)
        if directive is not None and directive.suspend:
            state.held = _Held.SUSPENDED
            return
        state.held = None
        want = self.strategy.want(job, state.history, now, directive)
        if want == Want.ON_DEMAND:
            self._request(index, now)
        elif not self.waiting and self._take(index, now, on_spot=True):
            self._start(index, now, on_spot=True)
        elif want == Want.SPOT_OR_ON_DEMAND:
            self._request(index, now)
        else:
            self.waiting[index] = None
            state.waiting_since = now
            limit = self.strategy.wait_limit(job, now, directive)
            if limit is not None:
                self._push(limit, _Kind.WAIT_OVER, index, now)

    def _request(self, index: int, now: float) -> None:
        """Start an on-demand run, or queue it for a node (pools)."""
        if self._take(index, now, on_spot=False):
            self._start(index, now, on_spot=False)
        else:
            self.queued[index] = now

    def _take(self, index: int, now: float, *, on_spot: bool) -> bool:
        """Capacity for job ``index``'s next run: counted GPUs (on-demand unlimited) or a node."""
        gpus = self.inputs.jobs[index].gpus
        if self.pools is not None:
            return self.pools.take(index, gpus, now, on_spot=on_spot)
        return not on_spot or self.spot_used + gpus <= self.capacity

    def _admit_waiting(self, now: float) -> None:
        if self.pools is not None:
            self._admit_to_pools(now)
            return
        for index in list(self.waiting):
            job = self.inputs.jobs[index]
            if self.spot_used + job.gpus <= self.capacity:
                del self.waiting[index]
                self.states[index].waiting_since = None
                self._start(index, now, on_spot=True)

    def _admit_to_pools(self, now: float) -> None:
        """Queued on-demand runs, then runs waiting for spot, first come first served."""
        assert self.pools is not None
        jobs, states = self.inputs.jobs, self.states
        requests = [Request(i, jobs[i].gpus, False, since) for i, since in self.queued.items()]
        requests += [Request(i, jobs[i].gpus, True, states[i].waiting_since or now)
                     for i in self.waiting]  # fmt: skip
        if not requests:
            return
        for index in self.pools.admit(requests, now):
            on_spot = index in self.waiting
            if on_spot:
                del self.waiting[index]
                states[index].waiting_since = None
            else:
                del self.queued[index]
            self._start(index, now, on_spot=on_spot)

    def _review_at(self, at: float) -> None:
        """Look at the pools again at ``at`` (once per moment)."""
        if self.pools is not None and at not in self._reviews:
            self._reviews.add(at)
            self._push(at, _Kind.SCALE, -1)

    def _start(self, index: int, now: float, *, on_spot: bool) -> None:
        job, state = self.inputs.jobs[index], self.states[index]
        state.attempts += 1
        latency = self.mapping.restart_latency_seconds if state.attempts > 1 else 0.0
        left = job.work - state.progress
        finish = now + latency + left + self._overhead(job, left)
        state.run = _Run(index, now, on_spot, latency, left, finish, charged_until=now)
        if on_spot and self.pools is None:
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
        del self.live[index]
        self.done += 1
        if self.governor is not None:
            self.governor.forget(index)

    def _preempt_over_capacity(self, now: float) -> None:
        if self.pools is not None:
            for index in self.pools.reclaim(self.capacity, now):
                self._preempt(index, now)
            return
        while self.spot_used > self.capacity + 1e-9 and self.spot_runs:
            self._preempt(self.spot_runs[-1], now)

    def _preempt(self, index: int, now: float) -> None:
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
        self._accrue(run, now)
        state.run = None
        if self.pools is not None:
            self.pools.release(index, now)
        elif run.on_spot:
            self.spot_used -= job.gpus
            self.spot_runs.remove(index)

    def _accrue(self, run: _Run, until: float) -> None:
        """Charge ``run`` from where it was last charged up to ``until``."""
        if until > run.charged_until:
            self._charge(run.job, run.charged_until, until, on_spot=run.on_spot)
            run.charged_until = until

    def _charge(self, index: int, start: float, end: float, *, on_spot: bool) -> None:
        """Add a run's cost (to the bill when GPUs are counted; with pools the nodes are the
        bill), GPU-hours and energy, split by day and Budget period."""
        job, result = self.inputs.jobs[index], self.result
        energy, members = self.inputs.energy, self.book.members[index]
        moment = start
        while moment < end:
            day = int(moment // DAY)
            until = min(end, (day + 1) * DAY,
                        *(self.book.period(b, moment).end for b in members))  # fmt: skip
            gpu_seconds = job.gpus * (until - moment)
            usd = self._usd(job.gpus, moment, until, on_spot=on_spot)
            kwh = energy.kwh(gpu_seconds)
            kg_co2e = kwh * energy.grams_co2e_per_kwh / 1000
            if self.pools is None:
                self._add_usd(day, usd, on_spot=on_spot)
            result.gpu_hours += gpu_seconds / 3600
            result.spot_gpu_hours += gpu_seconds / 3600 if on_spot else 0.0
            result.kwh += kwh
            result.kg_co2e += kg_co2e
            self.book.add(index, moment, usd=usd, on_spot=on_spot, kwh=kwh, kg_co2e=kg_co2e,
                          gpu_seconds=gpu_seconds)  # fmt: skip
            moment = until

    def _bill(self, gpus: int, start: float, end: float, on_spot: bool) -> None:
        """A pool node's ``gpus`` GPUs from ``start`` to ``end``, busy or idle: the bill."""
        moment = start
        while moment < end:
            day = int(moment // DAY)
            until = min(end, (day + 1) * DAY)
            self._add_usd(day, self._usd(gpus, moment, until, on_spot=on_spot), on_spot=on_spot)
            hours = gpus * (until - moment) / 3600
            self.result.node_gpu_hours = (self.result.node_gpu_hours or 0.0) + hours
            moment = until

    def _usd(self, gpus: float, start: float, end: float, *, on_spot: bool) -> float:
        prices = self.inputs.prices
        if on_spot:
            return gpus * prices.spot_usd_per_gpu(start, end)
        return gpus * prices.on_demand * (end - start) / 3600

    def _add_usd(self, day: int, usd: float, *, on_spot: bool) -> None:
        result = self.result
        _add_day(result.daily_usd, day, usd)
        _add_day(result.daily_spot_usd, day, usd if on_spot else 0.0)
        result.usd += usd
        result.spot_usd += usd if on_spot else 0.0

    # --- The governor ----------------------------------------------------------------------------
    def _govern(self, now: float) -> None:
        governor = self.governor
        assert governor is not None
        for index in self.live:
            run = self.states[index].run
            if run is not None:
                self._accrue(run, now)
        live = [LiveJob(i, self._phase(i), self.states[i].attempts) for i in self.live]
        for index in governor.tick(now, live):
            self._carry_out(index, now)
        for index in governor.released(list(self.blocked), now):
            del self.blocked[index]
            self._place(index, now)
        # Past the horizon a job the ladder keeps stopping before it works (restart latency
        # longer than the interval) would tick forever: it counts as unfinished instead.
        if self.done < len(self.inputs.jobs) and now < self.horizon:
            self._push(governor.next_tick(now), _Kind.GOVERN, -1)

    def _phase(self, index: int) -> TrainingJobPhase:
        state = self.states[index]
        if state.run is not None:
            return TrainingJobPhase.RUNNING
        if state.held == _Held.SUSPENDED:
            return TrainingJobPhase.SUSPENDED
        return TrainingJobPhase.BLOCKED if state.held == _Held.BLOCKED else TrainingJobPhase.PENDING

    def _carry_out(self, index: int, now: float) -> None:
        """What the controller does when job ``index``'s directive changed."""
        job, state = self.inputs.jobs[index], self.states[index]
        directive = self._directive(index)
        if state.run is not None:
            self._plan_stop(index, state.run, now)
        elif index in self.waiting:
            want = self.strategy.want(job, state.history, now, directive)
            if (directive is not None and directive.suspend) or want != Want.SPOT:
                del self.waiting[index]
                state.waiting_since = None
                state.history.ended.append(EndReason.RESCHEDULED)
                self._place(index, now)
        elif index in self.queued:  # on-demand, waiting for a node: decide again
            del self.queued[index]
            self._place(index, now)
        elif state.held == _Held.SUSPENDED and not (directive is not None and directive.suspend):
            self._place(index, now)

    def _plan_stop(self, index: int, run: _Run, now: float) -> None:
        """Stop ``run`` at its next checkpoint if its directive now suspends or moves it."""
        job, state = self.inputs.jobs[index], self.states[index]
        why = self.strategy.stop_for(job, state.history, now, on_spot=run.on_spot,
                                     directive=self._directive(index))  # fmt: skip
        run.stop_at = None
        if why is None or not self._checkpoints(job):
            return
        worked = now - run.start - run.latency
        cycle = self.mapping.checkpoint_interval_seconds + self.mapping.checkpoint_overhead_seconds
        written = max(math.ceil(worked / cycle), 0)  # the checkpoint to stop at
        at = run.start + run.latency + written * cycle if worked > 0 else now
        if at >= run.finish:
            return  # it finishes first
        run.stop_at, run.stop_reason = at, why
        run.stop_kept = written * self.mapping.checkpoint_interval_seconds if worked > 0 else 0.0
        self._push(at, _Kind.STOP, index, at)

    def _stop(self, index: int, at: float, now: float) -> None:
        state = self.states[index]
        run = state.run
        if run is None or run.stop_at != at:
            return  # finished, preempted or the stop was called off
        self._end_run(index, now)
        state.progress += min(run.stop_kept, run.work_left)
        state.history.ended.append(run.stop_reason)
        self._place(index, now)
        self._admit_waiting(now)

    def _close(self, now: float) -> None:
        result, jobs = self.result, self.inputs.jobs
        if self.pools is not None:
            # Nodes still open (minNodes) are billed until the last job is done.
            done = [s.done_at for s in self.states if s.done_at is not None]
            self.pools.close(max(done) if done and len(done) == len(jobs) else now)
            idle_hours = max((result.node_gpu_hours or 0.0) - result.gpu_hours, 0.0)
            idle_kwh = self.inputs.energy.idle_kwh(idle_hours * 3600)
            result.kwh += idle_kwh
            result.kg_co2e += idle_kwh * self.inputs.energy.grams_co2e_per_kwh / 1000
        result.budget_breaches = self.book.breaches()
        for number, budget in enumerate(self.book.budgets):
            name = budget.metadata.name or str(number)
            result.budget_daily_usd[name] = self.book.daily_usd(number)
            result.budget_period_days[name] = [int(p.start // DAY) for p in self.book.spend(number)]
        if self.governor is not None:
            result.governor_actions = dict(sorted(self.governor.actions.items()))
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
    result = PolicyResult("lower-bound", jobs=len(inputs.jobs), budget_breaches=None)
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
