"""``steward demo``: the local cluster, the operator in-process, a scripted scenario, live."""
