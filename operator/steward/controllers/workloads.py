"""kopf glue for TrainingJobs and InferenceServices: watch, index, queue, reconcile.

Watch handlers only record what they see in the :class:`ClusterIndex` and queue the workload it
concerns; workers take workloads off the queue and run observe (the index) -> decide (pure) ->
act (in a thread). Nothing here has a per-object timer: one resync loop re-queues every
workload periodically, which is how time-based decisions (spot fallback after a wait) happen.

At startup the index is filled by one list per kind before any worker runs, so no decision is
ever taken on a partial picture (a pod whose node is "missing" only because nodes were not
listed yet would look preempted).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Final

import kopf
from pydantic import ValidationError

from steward.act.governor import record
from steward.act.kube import (
    BUDGETS,
    COMPRESSION_JOBS,
    COST_POLICIES,
    DEPLOYMENTS,
    INFERENCE_SERVICES,
    JOBS,
    NAMESPACES,
    NODES,
    PODS,
    SERVICES,
    TRAINING_JOBS,
    Kube,
    KubeError,
    Resource,
    load_client,
)
from steward.act.workloads import ChildRefusedError, apply_serving, apply_training, write_status
from steward.api.constants import (
    DEFAULT_COMPRESSION_IMAGE,
    LABEL_ATTEMPT,
    LABEL_COMPRESSION_JOB,
    LABEL_MANAGED_BY,
    LABEL_SHARE,
    LABEL_WORKLOAD,
    MANAGED_BY,
)
from steward.api.schema import valid_objects
from steward.api.v1alpha1.budget import Budget
from steward.api.v1alpha1.common import CapacityType, PolicyMode
from steward.api.v1alpha1.costpolicy import CostPolicy
from steward.api.v1alpha1.inferenceservice import InferenceService
from steward.api.v1alpha1.trainingjob import TrainingJob, TrainingJobStatus
from steward.controllers.compression import COMPRESSION, reconcile_compression
from steward.controllers.leadership import Leadership
from steward.controllers.workqueue import WorkQueue
from steward.cost.usage import WorkloadRef
from steward.observe.index import ClusterIndex
from steward.policy.conditions import condition
from steward.policy.governor import Decision, admission
from steward.policy.notes import Note
from steward.policy.placement import PLATFORMS, CapacityLabels
from steward.policy.scope import WorkloadFacts
from steward.policy.serving import ServingObservation, decide_serving
from steward.policy.training import (
    INVALID_SPEC,
    StartAttempt,
    TrainingObservation,
    TrainingPlan,
    decide_training,
    mark_invalid,
)
from steward.snapshot import DeploymentRecord, JobRecord, NodeRecord, PodRecord
from steward.validation import validate_document

log = logging.getLogger("steward.workloads")

TRAINING: Final = "TrainingJob"
SERVING: Final = "InferenceService"
MANAGED: Final = {LABEL_MANAGED_BY: MANAGED_BY}
#: Seconds before a failed pass over a workload is retried (doubling up to the maximum).
RETRY_FIRST: Final = 2.0
RETRY_MAX: Final = 60.0

Key = tuple[str, str, str]  # (kind, namespace, name)


@dataclass(frozen=True)
class WorkloadSettings:
    """How the workload controllers run; set from ``steward run``'s options."""

    capacity_labels: str = "karpenter"
    resync_seconds: float = 30.0
    workers: int = 4
    kubeconfig: str | None = None
    #: Image of the compression runner's Jobs when a CompressionJob names none.
    compression_image: str = DEFAULT_COMPRESSION_IMAGE

    @property
    def labels(self) -> CapacityLabels:
        return PLATFORMS[self.capacity_labels]


@dataclass
class Runtime:
    settings: WorkloadSettings
    kube: Kube
    index: ClusterIndex = field(default_factory=ClusterIndex)
    nodes: dict[str, NodeRecord] = field(default_factory=dict)
    queue: WorkQueue[Key] = field(default_factory=WorkQueue)
    failures: dict[Key, int] = field(default_factory=dict)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    leadership: Leadership = field(default_factory=Leadership)


#: What the index holds: kind -> where it lives and which objects (label selector).
WATCHED: Final[dict[str, tuple[Resource, str | None]]] = {
    TRAINING: (TRAINING_JOBS, None),
    SERVING: (INFERENCE_SERVICES, None),
    COMPRESSION: (COMPRESSION_JOBS, None),
    "Job": (JOBS, f"{LABEL_MANAGED_BY}={MANAGED_BY}"),
    "Pod": (PODS, f"{LABEL_MANAGED_BY}={MANAGED_BY}"),
    "Deployment": (DEPLOYMENTS, f"{LABEL_MANAGED_BY}={MANAGED_BY}"),
    "Service": (SERVICES, f"{LABEL_MANAGED_BY}={MANAGED_BY}"),
    "Node": (NODES, None),
    # Admission of new training (a budget's BlockNewWork) reads these.
    "Budget": (BUDGETS, None),
    "CostPolicy": (COST_POLICIES, None),
    "Namespace": (NAMESPACES, None),
}


# --- Startup and shutdown -------------------------------------------------------------------------
@kopf.on.startup()
async def start_workloads(memo: kopf.Memo, **_: Any) -> None:
    settings: WorkloadSettings = memo.get("workload_settings") or WorkloadSettings()
    api_client = await asyncio.to_thread(load_client, settings.kubeconfig)
    runtime = Runtime(
        settings=settings, kube=Kube(api_client), leadership=memo.get("leadership") or Leadership()
    )
    for kind, (resource, selector) in WATCHED.items():
        try:
            listed = await asyncio.to_thread(runtime.kube.list, resource, selector)
        except KubeError as error:
            raise kopf.TemporaryError(f"cannot list {resource.plural}: {error}", delay=5) from error
        for obj in listed:
            _record(runtime, kind, "ADDED", obj)
    log.info(
        "index filled: %s",
        ", ".join(f"{runtime.index.count(kind)} {kind}" for kind in WATCHED),
    )
    memo["workloads"] = runtime
    runtime.leadership.on_gain.append(functools.partial(_queue_all, runtime))
    _queue_all(runtime)
    loop = asyncio.get_running_loop()
    runtime.tasks = [loop.create_task(_work(runtime)) for _ in range(settings.workers)]
    runtime.tasks.append(loop.create_task(_resync(runtime)))


@kopf.on.cleanup()
async def stop_workloads(memo: kopf.Memo, **_: Any) -> None:
    runtime: Runtime | None = memo.get("workloads")
    if runtime is None:
        return
    for task in runtime.tasks:
        task.cancel()
    await asyncio.gather(*runtime.tasks, return_exceptions=True)


# --- Watches: record and queue --------------------------------------------------------------------
def _register_watch(kind: str) -> None:
    resource, selector = WATCHED[kind]
    group, _, version = resource.group_version.rpartition("/")
    plural, labels = resource.plural, (MANAGED if selector else None)

    async def on_event(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
        _on_event(memo, kind, event)

    kopf.on.event(group, version, plural, labels=labels, id=f"watch-{plural}")(on_event)


for _kind in WATCHED:
    _register_watch(_kind)


def _on_event(memo: kopf.Memo, kind: str, event: kopf.RawEvent) -> None:
    runtime: Runtime | None = memo.get("workloads")
    if runtime is None:  # before startup finished: the startup list covers it
        return
    obj = dict(event["object"])
    obj.setdefault("kind", kind)
    for key in _record(runtime, kind, event.get("type") or "ADDED", obj):
        runtime.queue.add(key)


def _record(runtime: Runtime, kind: str, event_type: str, obj: dict[str, Any]) -> list[Key]:
    """Put ``obj`` in the index; the workloads whose decisions it may change."""
    if event_type == "DELETED":
        runtime.index.remove(kind, obj)
    elif not runtime.index.put(kind, obj):
        return []
    if kind == "Node":
        return _node_changed(runtime, event_type, obj)
    if kind in ("Budget", "CostPolicy"):
        return _waiting_training(runtime)
    return _owners(kind, obj)


def _waiting_training(runtime: Runtime) -> list[Key]:
    """Training that has not started: a budget or policy change may admit or block it."""
    return [
        (TRAINING, obj["metadata"]["namespace"], obj["metadata"]["name"])
        for obj in runtime.index.all(TRAINING)
        if not (obj.get("status") or {}).get("attempt")
    ]


def _owners(kind: str, obj: dict[str, Any]) -> list[Key]:
    """The workload an object is, or belongs to."""
    meta = obj.get("metadata") or {}
    namespace, labels = str(meta.get("namespace") or ""), meta.get("labels") or {}
    if kind in (TRAINING, SERVING, COMPRESSION):
        return [(kind, namespace, meta["name"])]
    if LABEL_COMPRESSION_JOB in labels:  # the runner's Job and pod
        return [(COMPRESSION, namespace, labels[LABEL_COMPRESSION_JOB])]
    workload = labels.get(LABEL_WORKLOAD)
    if not workload:
        return []
    if kind == "Job" or (kind == "Pod" and LABEL_ATTEMPT in labels):
        return [(TRAINING, namespace, workload)]
    if kind in ("Deployment", "Service") or LABEL_SHARE in labels:
        return [(SERVING, namespace, workload)]
    return []


def _node_changed(runtime: Runtime, event_type: str, obj: dict[str, Any]) -> list[Key]:
    name = obj["metadata"]["name"]
    before = runtime.nodes.get(name)
    if event_type == "DELETED":
        runtime.nodes.pop(name, None)
    else:
        runtime.nodes[name] = NodeRecord.parse(obj)
    after = runtime.nodes.get(name)
    if before is not None and after is not None and before.taints == after.taints:
        return []  # heartbeats and status updates change nothing Steward decides on
    return _workloads_on_node(runtime, name)


def _workloads_on_node(runtime: Runtime, node: str) -> list[Key]:
    keys: set[Key] = set()
    for pod in runtime.index.all("Pod"):
        if (pod.get("spec") or {}).get("nodeName") != node:
            continue
        meta = pod["metadata"]
        labels = meta.get("labels") or {}
        if LABEL_WORKLOAD not in labels:
            continue  # a compression runner: its node going changes nothing decided here
        kind = TRAINING if LABEL_ATTEMPT in labels else SERVING
        keys.add((kind, meta["namespace"], labels.get(LABEL_WORKLOAD, "")))
    return sorted(keys)


def _queue_all(runtime: Runtime) -> None:
    for kind in (TRAINING, SERVING, COMPRESSION):
        for obj in runtime.index.all(kind):
            runtime.queue.add((kind, obj["metadata"]["namespace"], obj["metadata"]["name"]))


async def _resync(runtime: Runtime) -> None:
    while True:
        await asyncio.sleep(runtime.settings.resync_seconds)
        _queue_all(runtime)


# --- Workers --------------------------------------------------------------------------------------
async def _work(runtime: Runtime) -> None:
    loop = asyncio.get_running_loop()
    while True:
        key = await runtime.queue.get()
        try:
            if not runtime.leadership.holds():
                continue  # a standby only watches; gaining the lease queues everything
            await _reconcile(runtime, key)
            runtime.failures.pop(key, None)
        except Exception as error:  # one workload's trouble must never stop the others
            failures = runtime.failures[key] = runtime.failures.get(key, 0) + 1
            delay = min(RETRY_FIRST * 2 ** (failures - 1), RETRY_MAX)
            level = logging.WARNING if isinstance(error, KubeError) else logging.ERROR
            log.log(level, "%s %s/%s: %s; retrying in %.0fs", *key, error, delay,
                    exc_info=not isinstance(error, KubeError))  # fmt: skip
            loop.call_later(delay, runtime.queue.add, key)
        finally:
            runtime.queue.done(key)


async def _reconcile(runtime: Runtime, key: Key) -> None:
    kind, namespace, name = key
    body = runtime.index.get(kind, namespace, name)
    if body is None or (body.get("metadata") or {}).get("deletionTimestamp"):
        return  # gone or going: owner references take the children with it
    if kind == TRAINING:
        await _reconcile_training(runtime, body)
    elif kind == COMPRESSION:
        _write_through(runtime, await reconcile_compression(runtime, body))
    else:
        await _reconcile_serving(runtime, body)


async def _reconcile_training(runtime: Runtime, body: dict[str, Any]) -> None:
    now = datetime.now(UTC)
    meta = body["metadata"]
    namespace, name, generation = meta["namespace"], meta["name"], meta.get("generation")
    try:
        job = TrainingJob.model_validate(body)
    except ValidationError:
        await _refuse(runtime, TRAINING_JOBS, body, _first_problem(body), now)
        return
    observation = TrainingObservation(
        job=job,
        attempts=tuple(JobRecord.parse(j) for j in runtime.index.children("Job", namespace, name)),
        pods=tuple(
            PodRecord.parse(p)
            for p in runtime.index.children("Pod", namespace, name)
            if LABEL_ATTEMPT in (p["metadata"].get("labels") or {})
        ),
        nodes=runtime.nodes,
        now=now,
        generation=generation,
    )
    blocking = _admission(runtime, job, now) if not (job.status and job.status.attempt) else None
    if blocking is not None and blocking.mode == PolicyMode.ENFORCE:
        observation = replace(observation, blocked=blocking.summary)
    plan = decide_training(observation)
    if blocking is not None and blocking.mode == PolicyMode.DRY_RUN and _starts_first(plan):
        policy = runtime.index.get("CostPolicy", "", blocking.policy)
        await asyncio.to_thread(record, runtime.kube, body, policy, blocking, now=now)
    if plan.recheck_at is not None:  # a stop waiting for the next checkpoint
        delay = max((plan.recheck_at - now).total_seconds(), 0.0)
        asyncio.get_running_loop().call_later(delay, runtime.queue.add, (TRAINING, namespace, name))
    _log_plan(TRAINING, namespace, name, [a.note for a in plan.actions] + list(plan.notes))
    try:
        written = await asyncio.to_thread(
            functools.partial(
                apply_training, runtime.kube, body, job=job, plan=plan,
                labels=runtime.settings.labels, now=now,
            )
        )  # fmt: skip
    except ChildRefusedError as refused:
        await _refuse(runtime, TRAINING_JOBS, body, refused.message, now)
        return
    _write_through(runtime, written)


def _admission(runtime: Runtime, job: TrainingJob, now: datetime) -> Decision | None:
    """BlockNewWork on the new job ``job`` (see :func:`admission`), from the index."""
    budgets = valid_objects(runtime.index.all("Budget"), Budget)
    policies = valid_objects(runtime.index.all("CostPolicy"), CostPolicy)
    namespace = runtime.index.get("Namespace", "", job.metadata.namespace or "")
    facts = WorkloadFacts(
        ref=WorkloadRef(TRAINING, job.metadata.namespace or "", job.metadata.name or ""),
        labels=job.metadata.labels,
        cost_center=job.spec.cost_center,
        namespace_labels=((namespace or {}).get("metadata") or {}).get("labels") or {},
    )
    return admission(facts, job.spec.priority, budgets, policies, now)


def _starts_first(plan: TrainingPlan) -> bool:
    return any(isinstance(a, StartAttempt) and a.attempt == 1 for a in plan.actions)


async def _reconcile_serving(runtime: Runtime, body: dict[str, Any]) -> None:
    now = datetime.now(UTC)
    meta = body["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    try:
        service = InferenceService.model_validate(body)
    except ValidationError:
        log.warning("InferenceService %s/%s: %s", namespace, name, _first_problem(body))
        return
    deployments = runtime.index.children("Deployment", namespace, name)
    pods = [
        PodRecord.parse(p)
        for p in runtime.index.children("Pod", namespace, name)
        if LABEL_SHARE in (p["metadata"].get("labels") or {})
    ]
    observation = ServingObservation(
        service=service,
        deployments=tuple(DeploymentRecord.parse(d) for d in deployments),
        pods=tuple(pods),
        nodes=runtime.nodes,
        now=now,
        capacity_labels=runtime.settings.labels,
        generation=meta.get("generation"),
    )
    plan = decide_serving(observation)
    _log_plan(SERVING, namespace, name, list(plan.notes))
    by_share = {
        CapacityType.SPOT
        if DeploymentRecord.parse(d).share == "spot"
        else CapacityType.ON_DEMAND: d
        for d in deployments
    }
    has_service = runtime.index.get("Service", namespace, name) is not None
    written = await asyncio.to_thread(
        functools.partial(
            apply_serving, runtime.kube, body, service=service, plan=plan, existing=by_share,
            has_service=has_service, labels=runtime.settings.labels, now=now,
        )
    )  # fmt: skip
    _write_through(runtime, written)


async def _refuse(
    runtime: Runtime, resource: Resource, body: dict[str, Any], message: str, now: datetime
) -> None:
    """Mark a refused spec on the object (condition Valid=False) and say so in an Event, once per
    generation."""
    generation = body["metadata"].get("generation")
    try:
        previous = TrainingJobStatus.model_validate(body.get("status") or {})
    except ValidationError:
        previous = TrainingJobStatus()
    valid = condition(previous.conditions, "Valid")
    if (
        valid is not None
        and valid.reason == INVALID_SPEC
        and valid.observed_generation == generation
    ):
        return
    status = mark_invalid(previous, message, now=now, generation=generation)
    note = Note("Warning", INVALID_SPEC, message)

    def write() -> dict[str, Any] | None:
        runtime.kube.event(body, note, now=now, action="Validate")
        return write_status(runtime.kube, resource, body, status)

    updated = await asyncio.to_thread(write)
    if updated is not None:
        _write_through(runtime, [(TRAINING, updated)])


def _first_problem(body: dict[str, Any]) -> str:
    problems = validate_document(body, "apiserver")
    if not problems:
        return "the object does not match the Steward API"
    first = problems[0]
    return f"{first.path}: {first.message}" if first.path else first.message


def _log_plan(kind: str, namespace: str, name: str, notes: list[Note]) -> None:
    for note in notes:
        log.info("%s %s/%s: %s: %s", kind, namespace, name, note.reason, note.message)


def _write_through(runtime: Runtime, written: list[tuple[str, dict[str, Any]]]) -> None:
    for kind, obj in written:
        obj.setdefault("kind", kind)
        runtime.index.put(kind, obj)
