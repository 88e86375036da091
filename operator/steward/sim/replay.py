"""Replay every policy over the same inputs and build the report."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from steward.sim.engine import Inputs, PolicyResult, Replay, lower_bound
from steward.sim.report import Report
from steward.sim.strategies import STRATEGIES

#: Every policy, baselines first; the lower bound is computed, not replayed.
POLICIES = (*STRATEGIES, "lower-bound")


def replay_all(
    inputs: Inputs,
    *,
    names: tuple[str, str, str],
    policies: Sequence[str] = POLICIES,
    progress: Callable[[str, float], None] | None = None,
) -> Report:
    """Each of ``policies`` over ``inputs`` (Steward under ``inputs.governance``; every policy's
    breaches of its Budgets counted); ``names`` are the workload, capacity and price
    inputs' names for the report; ``progress(policy, simulated time)`` is called as it runs."""
    results: list[PolicyResult] = []
    for policy in policies:
        if policy == "lower-bound":
            result = lower_bound(inputs)
        else:
            strategy = STRATEGIES[policy](inputs.mapping)
            tick = (lambda now, p=policy: progress(p, now)) if progress else None
            result = Replay(inputs, strategy).run(tick)
        results.append(result)
    workload, capacity, prices = names
    return Report(workload, capacity, prices, len(inputs.jobs), results,
                  inputs.governance.budgets)  # fmt: skip
