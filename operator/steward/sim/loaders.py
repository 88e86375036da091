"""Loaders for the public traces in ``shared/data`` (see its PROVENANCE.md), each to the
simulator's model. A malformed file raises :class:`TraceError` naming the file and line.

Workloads: Alibaba ``openb`` pod lists and the Alibaba spot-GPU job lists. Spot capacity:
SkyPilot / SpotHedge JSON tick series, Bamboo add/remove event CSVs and GCP count logs, Parcae
segments. Prices: AWS spot price history, GCP price history, constants.
"""

from __future__ import annotations

import csv
import gzip
import json
import math
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from steward.api.v1alpha1.common import Priority
from steward.sim.mapping import Checkpointing, SimMapping, TickCounts
from steward.sim.model import CapacityTrace, PriceSeries, SimJob

#: Resolution event-based capacity traces are sampled at.
EVENT_TICK_SECONDS: Final = 60.0
#: GPUs per AWS instance type of the price history (p2, p3 families).
AWS_GPUS: Final = {
    "p2.xlarge": 1, "p2.8xlarge": 8, "p2.16xlarge": 16,
    "p3.2xlarge": 1, "p3.8xlarge": 4, "p3.16xlarge": 8, "p3dn.24xlarge": 8,
}  # fmt: skip


class TraceError(ValueError):
    """A trace file that cannot be read as its format says."""


# --- Workloads ------------------------------------------------------------------------------------
def load_workload(path: Path, mapping: SimMapping) -> list[SimJob]:
    """Jobs from an openb pod list or an Alibaba spot-GPU job list (told apart by header)."""
    with _open_text(path) as rows:
        header = next(csv.reader([next(rows)]))
        reader = csv.DictReader(rows, fieldnames=header)
        if "num_gpu" in header:
            jobs = list(_openb(reader, path, mapping))
        elif "job_type" in header:
            jobs = list(_alibaba_spot(reader, path, mapping))
        else:
            raise TraceError(f"{path}: unknown workload format (header {header})")
    if not jobs:
        raise TraceError(f"{path}: no GPU job with at least {mapping.min_work_seconds:g} s of work")
    jobs.sort(key=lambda job: (job.arrival, job.name))
    return jobs


def _openb(rows: Iterable[dict[str, str]], path: Path, mapping: SimMapping) -> Iterator[SimJob]:
    """openb: a GPU pod runs from ``scheduled_time`` to ``deletion_time``; its GPUs are
    ``num_gpu x gpu_milli / 1000`` (shared GPUs count their share)."""
    for line, row in enumerate(rows, start=2):
        try:
            gpus = int(row["num_gpu"]) * int(row["gpu_milli"] or 1000) / 1000
            if gpus <= 0 or not row["scheduled_time"] or not row["deletion_time"]:
                continue
            start, end = float(row["scheduled_time"]), float(row["deletion_time"])
            arrival = float(row["creation_time"])
        except (KeyError, ValueError) as error:
            raise TraceError(f"{path}:{line}: {error}") from None
        qos = row.get("qos", "")
        yield from _job(
            row["name"], arrival, gpus, end - start, eligible=qos in mapping.spot_qos,
            group="openb", priority=mapping.priority_of(qos), mapping=mapping,
        )  # fmt: skip


def _alibaba_spot(
    rows: Iterable[dict[str, str]], path: Path, mapping: SimMapping
) -> Iterator[SimJob]:
    """Alibaba spot-GPU jobs: ``gpu_request x worker_num`` GPUs for ``duration`` seconds."""
    for line, row in enumerate(rows, start=2):
        try:
            gpus = float(row["gpu_request"]) * int(float(row["worker_num"]))
            work, arrival = float(row["duration"]), float(row["submit_time"])
        except (KeyError, ValueError) as error:
            raise TraceError(f"{path}:{line}: {error}") from None
        if gpus <= 0:
            continue
        job_type = row.get("job_type", "")
        group = f"org-{row.get('organization', '0')}"
        yield from _job(
            row["job_name"], arrival, gpus, work, eligible=job_type in mapping.spot_job_types,
            group=group, priority=mapping.priority_of(job_type), mapping=mapping,
        )  # fmt: skip


def _job(
    name: str,
    arrival: float,
    gpus: float,
    work: float,
    *,
    eligible: bool,
    group: str,
    priority: Priority,
    mapping: SimMapping,
) -> Iterator[SimJob]:
    if work < mapping.min_work_seconds:
        return
    checkpointed = mapping.checkpointing == Checkpointing.ALL or (
        mapping.checkpointing == Checkpointing.SPOT_ELIGIBLE and eligible
    )
    slack = mapping.deadline_slack
    deadline = arrival + slack * work if slack is not None else None
    yield SimJob(name, arrival, gpus, work, eligible, checkpointed, deadline, group, priority)


# --- Spot capacity --------------------------------------------------------------------------------
def load_capacity(path: Path, mapping: SimMapping) -> CapacityTrace:
    """Spot capacity in GPUs: instances obtainable x ``gpus_per_trace_unit`` x ``capacity_scale``.

    Formats: ``{"metadata": {"gap_seconds": N}, "data": [k, ...]}`` (SkyPilot, SpotHedge; ``k``
    counts unavailable instances out of the trace's largest ``k`` unless the mapping's
    ``tick_counts`` says ``available``);
    ``ms,add|remove,node`` CSV (Bamboo); ``date, time, count`` (Bamboo's GCP logs); JSON lines
    ``[ms, "add"|"remove"|"no-op", {"nodes": [...]}]`` (Parcae). Event traces are sampled every
    :data:`EVENT_TICK_SECONDS`.
    """
    text = _read(path)
    stripped = text.lstrip()
    if stripped.startswith("{"):
        tick, counts = _tick_json(text, path)
        if mapping.tick_counts == TickCounts.UNAVAILABLE:
            units = max(*counts, 1)
            counts = [units - k for k in counts]
    elif stripped.startswith("["):
        tick, counts = EVENT_TICK_SECONDS, _sample(_parcae(text, path))
    elif "add" in text[:200] or "remove" in text[:200]:
        tick, counts = EVENT_TICK_SECONDS, _sample(_bamboo_events(text, path))
    else:
        tick, counts = EVENT_TICK_SECONDS, _sample(_count_log(text, path))
    scale = mapping.gpus_per_trace_unit * mapping.capacity_scale
    return CapacityTrace(path.name, tick, tuple(float(k) * scale for k in counts))


def _tick_json(text: str, path: Path) -> tuple[float, list[int]]:
    try:
        document = json.loads(text)
        tick = float(document["metadata"]["gap_seconds"])
        counts = [int(k) for k in document["data"]]
    except (ValueError, KeyError, TypeError) as error:
        raise TraceError(f"{path}: not a tick trace: {error}") from None
    if tick <= 0 or not counts or min(counts) < 0:
        raise TraceError(f"{path}: gap_seconds must be positive and counts non-negative")
    return tick, counts


def _bamboo_events(text: str, path: Path) -> list[tuple[float, int]]:
    alive: set[str] = set()
    steps: list[tuple[float, int]] = []
    for line, row in enumerate(csv.reader(text.splitlines()), start=1):
        if not row:
            continue
        try:
            ms, op, node = float(row[0]), row[1].strip(), row[2].strip()
        except (IndexError, ValueError) as error:
            raise TraceError(f"{path}:{line}: {error}") from None
        _apply(alive, op, [node], path, line)
        steps.append((ms / 1000, len(alive)))
    return steps


def _parcae(text: str, path: Path) -> list[tuple[float, int]]:
    alive: set[str] = set()
    steps: list[tuple[float, int]] = []
    for line, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            ms, op, detail = json.loads(raw)
            nodes = list(detail.get("nodes", [])) if isinstance(detail, dict) else []
        except (ValueError, TypeError) as error:
            raise TraceError(f"{path}:{line}: {error}") from None
        _apply(alive, op, nodes, path, line)
        steps.append((float(ms) / 1000, len(alive)))
    return steps


def _apply(alive: set[str], op: str, nodes: list[str], path: Path, line: int) -> None:
    if op == "add":
        alive.update(nodes)
    elif op == "remove":
        alive.difference_update(nodes)
    elif op != "no-op":
        raise TraceError(f"{path}:{line}: unknown event {op!r}")


def _count_log(text: str, path: Path) -> list[tuple[float, int]]:
    steps: list[tuple[float, int]] = []
    start: datetime | None = None
    for line, raw in enumerate(text.splitlines(), start=1):
        parts = [p.strip() for p in raw.split(",")]
        if len(parts) != 3:
            continue
        try:
            moment = datetime.strptime(f"{parts[0]} {parts[1]}", "%Y-%m-%d %H:%M:%S")
            count = int(parts[2])
        except ValueError as error:
            raise TraceError(f"{path}:{line}: {error}") from None
        start = start or moment
        steps.append(((moment - start).total_seconds(), count))
    return steps


def _sample(steps: list[tuple[float, int]]) -> list[int]:
    """The count in force at every tick from the first event to the last (the last event at a
    moment wins)."""
    if not steps:
        raise TraceError("the capacity trace has no events")
    steps.sort(key=lambda step: step[0])
    first, last = steps[0][0], steps[-1][0]
    counts, i, current = [], 0, steps[0][1]
    ticks = math.ceil((last - first) / EVENT_TICK_SECONDS) + 1
    for n in range(ticks):
        moment = first + n * EVENT_TICK_SECONDS
        while i < len(steps) and steps[i][0] <= moment:
            current = steps[i][1]
            i += 1
        counts.append(current)
    return counts


# --- Prices ---------------------------------------------------------------------------------------
def aws_spot_prices(history: Path, on_demand: Path, instance_type: str, zone: str) -> PriceSeries:
    """Spot per GPU-hour of ``instance_type`` in ``zone`` from the AWS spot price history (its
    first change is simulation time 0), on-demand from the on-demand price list."""
    gpus = AWS_GPUS.get(instance_type)
    if gpus is None:
        raise TraceError(
            f"unknown GPUs per instance for {instance_type}; known: {sorted(AWS_GPUS)}"
        )
    points: list[tuple[datetime, float]] = []
    with _open_text(history) as rows:
        for row in csv.DictReader(rows):
            if row["instance_type"] == instance_type and row["availability_zone"] == zone:
                moment = datetime.fromisoformat(row["timestamp"].replace("Z", "+00:00"))
                points.append((moment, float(row["spot_price_usd_per_hour"]) / gpus))
    if not points:
        raise TraceError(f"{history}: no spot prices for {instance_type} in {zone}")
    listed = json.loads(_read(on_demand))["prices"]
    if instance_type not in listed:
        raise TraceError(f"{on_demand}: no on-demand price for {instance_type}")
    return _series(f"aws {instance_type} {zone}", float(listed[instance_type]) / gpus, points)


def gcp_prices(history: Path, instance: str, region: str) -> PriceSeries:
    """Spot and on-demand per GPU-hour of a GCP ``instance`` in ``region`` over the weekly
    price-list revisions (the first revision with a spot price is simulation time 0); the
    on-demand price is the mean over those revisions."""
    points: list[tuple[datetime, float]] = []
    on_demand: list[float] = []
    with _open_text(history) as rows:
        for row in csv.DictReader(rows):
            if row["instance"] != instance or row["region"] != region or not row["hour_spot"]:
                continue
            gpus = float(row["gpu_count"])
            moment = datetime.strptime(row["date"], "%Y-%m-%d").replace(tzinfo=UTC)
            points.append((moment, float(row["hour_spot"]) / gpus))
            on_demand.append(float(row["hour_ondemand"]) / gpus)
    if not points:
        raise TraceError(f"{history}: no spot prices for {instance} in {region}")
    return _series(f"gcp {instance} {region}", sum(on_demand) / len(on_demand), points)


def _series(name: str, on_demand: float, points: list[tuple[datetime, float]]) -> PriceSeries:
    points.sort()
    start = points[0][0]
    times = tuple((moment - start).total_seconds() for moment, _ in points)
    return PriceSeries(name, on_demand, times, tuple(price for _, price in points))


def _read(path: Path) -> str:
    with _open_text(path) as rows:
        return "".join(rows)


@contextmanager
def _open_text(path: Path) -> Iterator[Iterator[str]]:
    """Lines of a text file, gzip-compressed or not."""
    try:
        file = (
            gzip.open(path, "rt", encoding="utf-8", newline="")  # noqa: SIM115 (closed below)
            if path.suffix == ".gz"
            else path.open(encoding="utf-8", newline="")
        )
    except OSError as error:
        raise TraceError(f"{path}: {error}") from None
    with file:
        yield iter(file)
