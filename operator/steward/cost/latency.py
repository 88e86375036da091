"""Request latency of serving workloads, from Prometheus histogram buckets. Pure.

A serving pod publishes a histogram (vLLM: ``vllm:e2e_request_latency_seconds``): per bucket
bound ``le`` (seconds), a counter of the requests served within it. Over a window, the requests
within each bound are the counters' increases over the covered steps (a reset counts from
zero), summed over a workload's pods; :func:`quantile` is what Prometheus's
``histogram_quantile`` computes from such buckets.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

from steward.cost.usage import PodKey, Series, Usage

#: Bucket upper bound (seconds; ``inf`` for ``+Inf``) -> requests within it (cumulative).
Buckets = dict[float, float]


def increase(counter: Series, covered: Iterable[int]) -> float:
    """How much ``counter`` grew over the ``covered`` steps (each from the step before it)."""
    total = 0.0
    for index in covered:
        now, before = counter.get(index), counter.get(index - 1)
        if now is not None and before is not None:
            total += now - before if now >= before else now
    return total


def window_buckets(usage: Usage, covered: list[int]) -> dict[PodKey, Buckets]:
    """Per pod: the requests served within each bucket bound over the ``covered`` steps."""
    return {
        pod: {bound: increase(counter, covered) for bound, counter in buckets.items()}
        for pod, buckets in usage.latency.items()
    }


def merged(parts: Iterable[Mapping[float, float]]) -> Buckets:
    """Several pods' buckets as one histogram (bucket by bucket sums)."""
    total: Buckets = {}
    for part in parts:
        for bound, count in part.items():
            total[bound] = total.get(bound, 0.0) + count
    return total


def requests(buckets: Mapping[float, float]) -> float:
    """All requests the histogram counts: its ``+Inf`` bucket (else its largest)."""
    if not buckets:
        return 0.0
    return buckets.get(math.inf, buckets[max(buckets)])


def quantile(q: float, buckets: Mapping[float, float]) -> float | None:
    """The ``q`` quantile (seconds) as ``histogram_quantile`` gives it: the bucket where the
    rank ``q x requests`` falls, interpolated linearly from the bound below it (0 for the
    first); in the ``+Inf`` bucket, the largest finite bound. None without requests."""
    ordered = sorted(buckets.items())
    total = requests(buckets)
    if total <= 0 or not ordered:
        return None
    rank = q * total
    lower, below = 0.0, 0.0
    for bound, count in ordered:
        if count >= rank:
            if math.isinf(bound):
                return lower
            if count == below:
                return bound
            return lower + (bound - lower) * (rank - below) / (count - below)
        lower, below = bound, count
    return lower
