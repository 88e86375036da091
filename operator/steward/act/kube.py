"""A thin, raw Kubernetes REST layer: create, merge-patch, list, status, Events; JSON in and out.

Raw JSON rather than the client's models, so watch events, list results and write responses
all feed the index in one shape. Errors come out typed: :class:`RefusedError` when the apiserver
rejects what Steward sent as invalid (the message names the field), :class:`TransientError` for
everything worth retrying. Blocking: call it through ``asyncio.to_thread``.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from kubernetes import client, config

from steward.api.constants import GROUP, VERSION
from steward.policy.notes import Note

Raw = dict[str, Any]

REPORTING_CONTROLLER: Final = f"{GROUP}/steward"
TIMEOUT_SECONDS: Final = 30


class KubeError(Exception):
    """Something the apiserver answered with an error."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.message = message


class RefusedError(KubeError):
    """The apiserver refused the object as invalid (400/422); retrying will not help."""


class TransientError(KubeError):
    """A failure worth retrying later (conflicts, throttling, timeouts, server errors)."""


class NotFoundError(KubeError):
    """The object does not exist."""


@dataclass(frozen=True)
class Resource:
    """Where a kind lives in the REST API."""

    group_version: str  # "v1", "batch/v1", "steward.ai/v1alpha1"
    plural: str

    def path(self, namespace: str | None, name: str | None = None, sub: str = "") -> str:
        root = "/api" if "/" not in self.group_version else "/apis"
        path = f"{root}/{self.group_version}"
        if namespace:
            path += f"/namespaces/{namespace}"
        path += f"/{self.plural}"
        if name:
            path += f"/{name}"
        return path + (f"/{sub}" if sub else "")


PODS: Final = Resource("v1", "pods")
NODES: Final = Resource("v1", "nodes")
SERVICES: Final = Resource("v1", "services")
JOBS: Final = Resource("batch/v1", "jobs")
DEPLOYMENTS: Final = Resource("apps/v1", "deployments")
EVENTS: Final = Resource("events.k8s.io/v1", "events")
TRAINING_JOBS: Final = Resource(f"{GROUP}/{VERSION}", "trainingjobs")
INFERENCE_SERVICES: Final = Resource(f"{GROUP}/{VERSION}", "inferenceservices")
BUDGETS: Final = Resource(f"{GROUP}/{VERSION}", "budgets")
COST_POLICIES: Final = Resource(f"{GROUP}/{VERSION}", "costpolicies")
COMPRESSION_JOBS: Final = Resource(f"{GROUP}/{VERSION}", "compressionjobs")
GPU_NODE_POOLS: Final = Resource(f"{GROUP}/{VERSION}", "gpunodepools")
NAMESPACES: Final = Resource("v1", "namespaces")


def load_client(kubeconfig: str | None = None) -> client.ApiClient:
    """An ApiClient for the in-cluster service account, else the kubeconfig."""
    if kubeconfig is None:
        try:
            config.load_incluster_config()  # type: ignore[no-untyped-call]
            return client.ApiClient()
        except config.ConfigException:
            pass
    loaded: client.ApiClient = config.new_client_from_config(config_file=kubeconfig)  # type: ignore[no-untyped-call]
    return loaded


class Kube:
    """Raw REST calls through one ApiClient (its auth, TLS and connection pool)."""

    def __init__(self, api_client: client.ApiClient) -> None:
        self.api_client = api_client

    def request(
        self,
        method: str,
        path: str,
        body: Raw | None = None,
        *,
        content_type: str = "application/json",
        query: list[tuple[str, str]] | None = None,
    ) -> Raw:
        """One call; the response body as JSON, or a typed :class:`KubeError`."""
        headers = {"Accept": "application/json", "Content-Type": content_type}
        method_, url, headers_, body_, _ = self.api_client.param_serialize(
            method,
            path,
            query_params=query or [],
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
        )
        try:
            response = self.api_client.call_api(
                method_, url, header_params=headers_, body=body_, _request_timeout=TIMEOUT_SECONDS
            )
        except client.ApiException as error:
            raise _typed(error.status or 0, str(error.body or error.reason)) from error
        except OSError as error:  # connection refused, reset, timeout
            raise TransientError(0, str(error)) from error
        data: bytes = response.read() or b"{}"  # type: ignore[no-untyped-call]
        if not 200 <= response.status < 300:
            raise _typed(response.status, data.decode(errors="replace"))
        result: Raw = json.loads(data)
        return result

    def list(self, resource: Resource, label_selector: str | None = None) -> list[Raw]:
        """Every object of ``resource`` in the cluster (all namespaces), with kind set."""
        query = [("labelSelector", label_selector)] if label_selector else []
        listed = self.request("GET", resource.path(None), query=query)
        kind = str(listed.get("kind", "")).removesuffix("List")
        version = listed.get("apiVersion")
        return [{"kind": kind, "apiVersion": version, **item} for item in listed["items"]]

    def create(self, resource: Resource, obj: Raw) -> Raw:
        """Create ``obj``; if it exists already (a repeat after a restart), return that one."""
        created = self.create_new(resource, obj)
        if created is not None:
            return created
        namespace = obj["metadata"].get("namespace")
        return self.request("GET", resource.path(namespace, obj["metadata"]["name"]))

    def create_new(self, resource: Resource, obj: Raw) -> Raw | None:
        """Create ``obj``; None when an object of that name exists already."""
        try:
            return self.request("POST", resource.path(obj["metadata"].get("namespace")), obj)
        except KubeError as error:
            if error.status != 409:
                raise
        return None

    def merge_patch(
        self, resource: Resource, namespace: str | None, name: str, patch: Raw, sub: str = ""
    ) -> Raw:
        return self.request(
            "PATCH",
            resource.path(namespace, name, sub),
            patch,
            content_type="application/merge-patch+json",
        )

    def event(
        self, regarding: Raw, note: Note, *, now: datetime, action: str, name: str | None = None
    ) -> bool:
        """Record ``note`` as an events.k8s.io/v1 Event on ``regarding``; with ``name``, only
        if no Event of that name exists (False then: someone recorded it already)."""
        meta = regarding["metadata"]
        namespace = meta.get("namespace") or "default"
        body = {
            "apiVersion": "events.k8s.io/v1",
            "kind": "Event",
            "metadata": {"name": name or f"{meta['name']}.{uuid.uuid4().hex[:12]}",
                         "namespace": namespace},
            "eventTime": now.isoformat(timespec="microseconds").replace("+00:00", "Z"),
            "reportingController": REPORTING_CONTROLLER,
            "reportingInstance": REPORTING_CONTROLLER,
            "action": action,
            "reason": note.reason,
            "note": note.message[:1024],
            "type": note.type,
            "regarding": {
                "apiVersion": regarding.get("apiVersion"),
                "kind": regarding.get("kind"),
                "name": meta["name"],
                "namespace": meta.get("namespace"),
                "uid": meta.get("uid"),
                "resourceVersion": meta.get("resourceVersion"),
            },
        }  # fmt: skip
        if name is None:
            self.request("POST", EVENTS.path(namespace), body)
            return True
        return self.create_new(EVENTS, body) is not None


def _typed(status: int, body: str) -> KubeError:
    message = body
    with contextlib.suppress(ValueError, AttributeError):
        message = str(json.loads(body).get("message", body))
    if status in (400, 422):
        return RefusedError(status, message)
    if status == 404:
        return NotFoundError(status, message)
    return TransientError(status, message)
