"""Leader election on a ``coordination.k8s.io/v1`` Lease, as client-go does it.

One replica holds the Lease and renews it every few seconds; the others try to take it once its
``renewTime + leaseDurationSeconds`` has passed. Every write carries the ``resourceVersion`` it
read, so two replicas racing for an expired Lease cannot both win: the apiserver accepts one
update and answers the other 409. Blocking: call through ``asyncio.to_thread``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from steward.act.kube import Kube, KubeError, NotFoundError, Resource
from steward.snapshot import parse_time

LEASES: Final = Resource("coordination.k8s.io/v1", "leases")


@dataclass(frozen=True)
class LeaseSettings:
    namespace: str
    name: str
    identity: str
    duration_seconds: int = 15


def _micro_time(moment: datetime) -> str:
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


class LeaseElector:
    """Acquire, renew and release one Lease for ``settings.identity``."""

    def __init__(self, kube: Kube, settings: LeaseSettings) -> None:
        self.kube = kube
        self.settings = settings

    def try_hold(self, now: datetime) -> bool:
        """Renew the Lease if held, take it if free or expired; whether it is held after."""
        path = LEASES.path(self.settings.namespace, self.settings.name)
        try:
            lease = self.kube.request("GET", path)
        except NotFoundError:
            return self._create(now)
        spec = lease.get("spec") or {}
        holder = spec.get("holderIdentity")
        if holder == self.settings.identity:
            return self._write(lease, now, transitions=0)
        renewed = parse_time(spec.get("renewTime")) or parse_time(spec.get("acquireTime"))
        duration = timedelta(seconds=int(spec.get("leaseDurationSeconds") or 0))
        if holder and renewed is not None and now < renewed + duration:
            return False
        return self._write(lease, now, transitions=1)

    def release(self) -> None:
        """Give the Lease up (on a clean shutdown) so a standby need not wait for it to expire."""
        path = LEASES.path(self.settings.namespace, self.settings.name)
        try:
            lease = self.kube.request("GET", path)
            if (lease.get("spec") or {}).get("holderIdentity") != self.settings.identity:
                return
            lease["spec"]["holderIdentity"] = None
            lease["spec"]["renewTime"] = None
            self.kube.request("PUT", path, lease)
        except KubeError:
            return  # it expires on its own

    def holder(self) -> str | None:
        path = LEASES.path(self.settings.namespace, self.settings.name)
        try:
            lease = self.kube.request("GET", path)
        except NotFoundError:
            return None
        holder = (lease.get("spec") or {}).get("holderIdentity")
        return str(holder) if holder else None

    def _create(self, now: datetime) -> bool:
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self.settings.name, "namespace": self.settings.namespace},
            "spec": self._spec(now, acquired=now, transitions=0),
        }
        try:
            self.kube.request("POST", LEASES.path(self.settings.namespace), body)
        except KubeError:
            return False  # someone else created it first
        return True

    def _write(self, lease: dict[str, Any], now: datetime, *, transitions: int) -> bool:
        spec = lease.get("spec") or {}
        acquired = now if transitions else parse_time(spec.get("acquireTime")) or now
        count = int(spec.get("leaseTransitions") or 0) + transitions
        lease["spec"] = self._spec(now, acquired=acquired, transitions=count)
        path = LEASES.path(self.settings.namespace, self.settings.name)
        try:
            self.kube.request("PUT", path, lease)
        except KubeError:
            return False  # 409: another replica wrote first
        return True

    def _spec(self, now: datetime, *, acquired: datetime, transitions: int) -> dict[str, Any]:
        return {
            "holderIdentity": self.settings.identity,
            "leaseDurationSeconds": self.settings.duration_seconds,
            "acquireTime": _micro_time(acquired),
            "renewTime": _micro_time(now),
            "leaseTransitions": transitions,
        }
