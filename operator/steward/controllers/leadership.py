"""Which replica acts: a Lease renewed in the background; everything that writes asks first.

Every replica watches and keeps its index warm; only the holder of the Lease reconciles
workloads, accounts and governs. A holder counts as leader until two thirds of the lease
duration after its last successful renewal (it renews every third), so it stops acting well
before a standby may take the Lease over: two replicas never act at once, even when the
apiserver is unreachable from the leader.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import kopf

from steward.act.kube import Kube, KubeError, load_client
from steward.act.lease import LeaseElector, LeaseSettings

log = logging.getLogger("steward.leadership")


@dataclass
class Leadership:
    """Whether this replica may act now. ``settings`` None: no election, always the leader."""

    settings: LeaseSettings | None = None
    renewed: float | None = None  # time.monotonic() of the last successful renewal
    on_gain: list[Callable[[], None]] = field(default_factory=list)

    def holds(self) -> bool:
        if self.settings is None:
            return True
        if self.renewed is None:
            return False
        return time.monotonic() - self.renewed < self.settings.duration_seconds * 2 / 3

    @property
    def identity(self) -> str:
        return self.settings.identity if self.settings else "standalone"


@kopf.on.startup()
async def start_leadership(memo: kopf.Memo, **_: Any) -> None:
    leadership: Leadership | None = memo.get("leadership")
    if leadership is None or leadership.settings is None:
        return
    kubeconfig = memo.get("kubeconfig")
    api_client = await asyncio.to_thread(load_client, kubeconfig)
    elector = LeaseElector(Kube(api_client), leadership.settings)
    memo["lease_elector"] = elector
    memo["lease_task"] = asyncio.get_running_loop().create_task(_renew(leadership, elector))


@kopf.on.cleanup()
async def stop_leadership(memo: kopf.Memo, **_: Any) -> None:
    task: asyncio.Task[None] | None = memo.get("lease_task")
    elector: LeaseElector | None = memo.get("lease_elector")
    if task is None or elector is None:
        return
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await asyncio.to_thread(elector.release)
    log.info("lease released by %s", elector.settings.identity)


async def _renew(leadership: Leadership, elector: LeaseElector) -> None:
    settings = elector.settings
    interval = settings.duration_seconds / 3
    while True:
        was_leader = leadership.holds()
        started = time.monotonic()
        try:
            held = await asyncio.to_thread(elector.try_hold, datetime.now(UTC))
        except KubeError as error:  # unreachable: leadership lapses on its own
            log.warning("lease %s/%s: %s", settings.namespace, settings.name, error)
            await asyncio.sleep(interval)
            continue
        if held:
            leadership.renewed = started
            if not was_leader:
                log.info("leader: %s holds lease %s/%s", settings.identity, settings.namespace,
                         settings.name)  # fmt: skip
                for callback in leadership.on_gain:
                    callback()
        else:
            leadership.renewed = None  # another replica holds it: stop acting at once
            if was_leader:
                log.warning("leadership lost by %s", settings.identity)
        await asyncio.sleep(interval)
