"""Decisions: pure functions from typed observations (and the time, as an input) to plans.

Nothing here performs I/O, reads a clock or imports kopf or a client; the operator and the
simulator run the same code.
"""
