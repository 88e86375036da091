"""The CompressionJob controller: observe the job, its runner Job and pod, and the target
service from the index; decide (``steward.policy.compression_run``); create the runner, write
the status, promote the service (its ``status.activeModel``, which the serving controller rolls
its Deployments to), and post Events."""

from __future__ import annotations

import asyncio
import functools
import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from pydantic import ValidationError

from steward.act.compression import runner_job_manifest
from steward.act.kube import COMPRESSION_JOBS, INFERENCE_SERVICES, JOBS, Kube
from steward.act.workloads import write_status
from steward.api.constants import LABEL_COMPRESSION_JOB
from steward.api.v1alpha1.compressionjob import CompressionJob
from steward.api.v1alpha1.inferenceservice import InferenceService
from steward.policy.compression_run import (
    CompressionPlan,
    RunnerObservation,
    decide_compression,
    runner_name,
)

if TYPE_CHECKING:
    from steward.controllers.workloads import Runtime

log = logging.getLogger("steward.compression")
COMPRESSION: Final = "CompressionJob"
SERVING: Final = "InferenceService"
Raw = dict[str, Any]


async def reconcile_compression(runtime: Runtime, body: Raw) -> list[tuple[str, Raw]]:
    """One step of a CompressionJob; returns the objects written (for the index)."""
    meta = body["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    try:
        job = CompressionJob.model_validate(body)
    except ValidationError as error:
        log.warning("CompressionJob %s/%s: %s", namespace, name, error.errors()[0]["msg"])
        return []
    observation = RunnerObservation(
        job=job,
        runner=runtime.index.get("Job", namespace, runner_name(name)),
        message=_termination_message(runtime, namespace, name),
        service=_service(runtime, namespace, job.spec.target),
        now=datetime.now(UTC),
        generation=meta.get("generation"),
    )
    plan = decide_compression(observation)
    for note in plan.notes:
        log.info("CompressionJob %s/%s: %s: %s", namespace, name, note.reason, note.message)
    image = runtime.settings.compression_image
    return await asyncio.to_thread(
        functools.partial(_apply, runtime.kube, body, job, plan, image=image, now=observation.now)
    )


def _apply(
    kube: Kube, body: Raw, job: CompressionJob, plan: CompressionPlan, *, image: str, now: datetime
) -> list[tuple[str, Raw]]:
    written: list[tuple[str, Raw]] = []
    if plan.create_runner:
        written.append(("Job", kube.create(JOBS, runner_job_manifest(body, job, image))))
    if plan.promote is not None and job.spec.target is not None:
        namespace = job.metadata.namespace
        active = plan.promote.model_dump(mode="json", by_alias=True, exclude_none=True)
        service = kube.merge_patch(INFERENCE_SERVICES, namespace, job.spec.target,
                                   {"status": {"activeModel": active}}, "status")  # fmt: skip
        written.append((SERVING, service))
    for note in plan.notes:
        kube.event(body, note, now=now, action="Compress")
    updated = write_status(kube, COMPRESSION_JOBS, body, plan.status)
    if updated is not None:
        written.append((COMPRESSION, updated))
    return written


def _termination_message(runtime: Runtime, namespace: str, name: str) -> str | None:
    """The runner container's termination message, once its pod has ended."""
    for pod in runtime.index.all("Pod"):
        meta = pod["metadata"]
        if meta.get("namespace") != namespace:
            continue
        if (meta.get("labels") or {}).get(LABEL_COMPRESSION_JOB) != name:
            continue
        for status in (pod.get("status") or {}).get("containerStatuses") or []:
            message = ((status.get("state") or {}).get("terminated") or {}).get("message")
            if message:
                return str(message)
    return None


def _service(runtime: Runtime, namespace: str, target: str | None) -> InferenceService | None:
    raw = runtime.index.get(SERVING, namespace, target) if target else None
    if raw is None:
        return None
    try:
        return InferenceService.model_validate(raw)
    except ValidationError:
        return None
