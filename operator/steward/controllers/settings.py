"""How kopf is configured for Steward: names from the design, quiet logs, robust watches."""

from __future__ import annotations

from typing import Any, Final

import kopf

from steward.api.constants import FINALIZER, KOPF_STORAGE_PREFIX

#: Seconds a watch request may stay open on the server before it is renewed. Below the usual
#: 5-minute idle timeouts of load balancers in front of apiservers, so watches never hang.
WATCH_SERVER_TIMEOUT: Final = 240
#: The client gives the server a little longer than it promised before giving up on it.
WATCH_CLIENT_TIMEOUT: Final = WATCH_SERVER_TIMEOUT + 30
CONNECT_TIMEOUT: Final = 30


def configure(settings: kopf.OperatorSettings) -> None:
    """Apply Steward's settings to kopf's.

    - finalizer ``steward.ai/finalizer``;
    - handler progress and diff-base in annotations under ``steward.ai/`` (never in status,
      which belongs to Steward's own typed status);
    - no Events from kopf itself: Steward posts its own (events.k8s.io), and kopf's handler
      errors go to the log; so the operator needs no core/v1 Event permission;
    - bounded watch timeouts, so a silently dropped connection is noticed.
    """
    settings.persistence.finalizer = FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(
        prefix=KOPF_STORAGE_PREFIX
    )
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=KOPF_STORAGE_PREFIX, key="last-handled-configuration"
    )
    settings.posting.enabled = False
    settings.watching.server_timeout = WATCH_SERVER_TIMEOUT
    settings.watching.client_timeout = WATCH_CLIENT_TIMEOUT
    settings.watching.connect_timeout = CONNECT_TIMEOUT


@kopf.on.startup()
async def _on_startup(settings: kopf.OperatorSettings, **_: Any) -> None:
    configure(settings)
