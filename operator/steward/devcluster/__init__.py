"""A real local Kubernetes for tests and the demo: etcd, kube-apiserver, kube-controller-manager,
kube-scheduler, kwok-simulated GPU nodes, kube-state-metrics, Prometheus and a DCGM-compatible
GPU metrics simulator, all on loopback, all built here from Go modules or Debian packages.
"""
