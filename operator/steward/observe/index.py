"""The operator's in-memory picture of the cluster, fed by watches and by Steward's own writes.

Objects are stored raw (API JSON) by kind, namespace and name, and also by the workload they
belong to (the ``steward.ai/workload`` label), so a decision finds a workload's Jobs or pods
without scanning. Writes carry a ``resourceVersion``; an older version never replaces a newer one
and a deleted object is not brought back by a late event or an initial list that raced the
watch, so the order in which watch events, list results and write responses arrive does not
matter.

Not thread-safe: the operator touches it only from its event loop.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from typing import Any

from steward.api.constants import LABEL_WORKLOAD

Raw = dict[str, Any]
Key = tuple[str, str]  # (namespace, name); namespace "" for cluster-scoped objects

#: Deletions remembered per kind. They only matter while events that predate them may still
#: arrive (an initial list racing a watch), so the oldest are forgotten past this many.
TOMBSTONES_KEPT = 10_000


def _version(obj: Raw) -> int:
    value = (obj.get("metadata") or {}).get("resourceVersion", "")
    # resourceVersions are opaque strings by contract; every apiserver backed by etcd emits the
    # revision as an integer, which is what ordering needs. Others order as "unknown" (0).
    return int(value) if isinstance(value, str) and value.isdigit() else 0


def _key(obj: Raw) -> Key:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta["name"])


class ClusterIndex:
    """Objects by kind; see the module docstring for the ordering guarantees."""

    def __init__(self) -> None:
        self._objects: dict[str, dict[Key, Raw]] = defaultdict(dict)
        self._deleted: dict[str, dict[Key, int]] = defaultdict(dict)
        self._by_workload: dict[str, dict[Key, set[str]]] = defaultdict(lambda: defaultdict(set))

    def put(self, kind: str, obj: Raw) -> bool:
        """Store ``obj`` unless a newer version (or its deletion) is already known."""
        key = _key(obj)
        version = _version(obj)
        known = self._objects[kind].get(key)
        if known is not None and version and _version(known) > version:
            return False
        if version and self._deleted[kind].get(key, 0) >= version:
            return False
        self._unlink(kind, key, known)
        self._objects[kind][key] = obj
        self._deleted[kind].pop(key, None)
        workload = ((obj.get("metadata") or {}).get("labels") or {}).get(LABEL_WORKLOAD)
        if workload:
            self._by_workload[kind][(key[0], workload)].add(key[1])
        return True

    def remove(self, kind: str, obj: Raw) -> None:
        """Forget ``obj``; versions up to its own cannot bring it back."""
        key = _key(obj)
        known = self._objects[kind].pop(key, None)
        self._unlink(kind, key, known)
        tombstones = self._deleted[kind]
        tombstones[key] = max(_version(obj), tombstones.pop(key, 0))
        if len(tombstones) > TOMBSTONES_KEPT:
            for old in list(tombstones)[: TOMBSTONES_KEPT // 2]:
                del tombstones[old]

    def get(self, kind: str, namespace: str, name: str) -> Raw | None:
        return self._objects[kind].get((namespace, name))

    def all(self, kind: str) -> Iterator[Raw]:
        return iter(list(self._objects[kind].values()))

    def children(self, kind: str, namespace: str, workload: str) -> list[Raw]:
        """Objects of ``kind`` in ``namespace`` labelled as belonging to ``workload``."""
        names = self._by_workload[kind].get((namespace, workload), set())
        return [self._objects[kind][(namespace, name)] for name in sorted(names)]

    def count(self, kind: str) -> int:
        return len(self._objects[kind])

    def _unlink(self, kind: str, key: Key, known: Raw | None) -> None:
        if known is None:
            return
        workload = ((known.get("metadata") or {}).get("labels") or {}).get(LABEL_WORKLOAD)
        if workload:
            self._by_workload[kind][(key[0], workload)].discard(key[1])
