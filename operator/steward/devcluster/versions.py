"""Pinned versions of everything the local cluster runs. Bump here, and only here."""

from __future__ import annotations

from typing import Final

KUBERNETES: Final = "v1.36.3"
#: The staging modules (k8s.io/api, k8s.io/apiserver, ...) released with KUBERNETES.
KUBERNETES_STAGING: Final = "v0.36.3"
ETCD: Final = "v3.6.16"
KWOK: Final = "v0.8.0"
KUBE_STATE_METRICS: Final = "v2.20.0"
HELM: Final = "v3.22.0"
#: Debian's package; Prometheus is not built, it is installed with apt.
PROMETHEUS_DEBIAN_PACKAGE: Final = "prometheus"
