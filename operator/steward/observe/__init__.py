"""Observation: what the cluster and Prometheus say, read in bulk, as typed snapshots."""
