"""The Kubernetes client, as the local-cluster tools use it: built from a kubeconfig, read raw.

Listing returns plain JSON dicts: faster than deserialising every object into the client's
models, and free of their everything-optional typing.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from kubernetes import client, config


def core_api(kubeconfig: str) -> client.CoreV1Api:
    """A CoreV1Api for the cluster of ``kubeconfig`` (its CA verified, its token sent)."""
    api_client = config.new_client_from_config(config_file=kubeconfig)  # type: ignore[no-untyped-call]
    return client.CoreV1Api(api_client)


def list_items(call: Callable[..., Any], **params: Any) -> list[dict[str, Any]]:
    """``items`` of a list call (``api.list_node``...), as JSON dicts."""
    response = call(_preload_content=False, **params)
    items: list[dict[str, Any]] = json.loads(response.data)["items"]
    return items
