"""Steward's API: the pydantic models of every custom resource, the single source of truth.

The CRDs in ``crds/`` are generated from these models (``steward crds``), and ``steward validate``
checks manifests against them, so the apiserver and the command line agree on what is valid.
"""
