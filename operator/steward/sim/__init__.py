"""Trace replay: real job, spot-capacity and price traces through Steward's own decision code,
on a simulated clock. Nothing here talks to a cluster, kopf or Prometheus."""
