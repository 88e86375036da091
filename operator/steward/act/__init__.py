"""Acting: applies decisions to the cluster idempotently and records them as Events.

Blocking (the official Kubernetes client); the controllers call it through
``asyncio.to_thread`` so the event loop never waits on the network.
"""
