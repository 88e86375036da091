"""kopf glue: the operator's settings and, as they arrive, one handler module per kind.

Handlers here stay thin: they manage lifecycles and call into ``act``; decisions live in
``policy``. This package is the only one that imports kopf.
"""
