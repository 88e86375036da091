"""The operator in a thread of the calling process, for ``steward demo``.

kopf documents this way of embedding it: its own event loop in a dedicated thread, stopped by a
flag (a thread other than the main one cannot install signal handlers, so the caller handles
Ctrl-C and sets the flag). The handlers, settings and decisions are those of ``steward run``.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from pathlib import Path

import kopf

from steward.controllers.accounting import AccountingOptions
from steward.controllers.governor import GovernorOptions
from steward.controllers.runner import operator_memo, register_handlers
from steward.controllers.workloads import WorkloadSettings


class EmbeddedOperatorError(RuntimeError):
    """The embedded operator did not start, or stopped on its own."""


class EmbeddedOperator:
    """``steward run`` (cluster-wide, no leader election) in a background thread.

    :meth:`start` returns once kopf reports it is ready; :meth:`stop` asks it to finish its
    cleanup handlers and waits for the thread. Its logs go to ``log_file``, not the terminal,
    which belongs to the caller's display.
    """

    def __init__(
        self,
        *,
        workloads: WorkloadSettings,
        accounting: AccountingOptions | None,
        governor: GovernorOptions,
        log_file: Path,
    ) -> None:
        self._memo = operator_memo(
            workloads=workloads, accounting=accounting, governor=governor, lease=None
        )
        self._log_file = log_file
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, name="steward-operator", daemon=True)
        self._error: BaseException | None = None

    def start(self, timeout: float = 60.0) -> None:
        """Start the thread and wait until kopf has run its startup handlers."""
        _log_to(self._log_file)
        register_handlers()
        _login_from_environment()
        self._thread.start()
        if not self._ready.wait(timeout) or not self._thread.is_alive():
            self.stop()
            raise EmbeddedOperatorError(
                f"the operator did not start within {timeout:.0f}s ({self._error!r}); "
                f"its log: {self._log_file}"
            )

    def stop(self, timeout: float = 30.0) -> None:
        """Ask the operator to stop and wait for it (at most ``timeout`` seconds)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def _main(self) -> None:
        try:
            asyncio.run(
                kopf.operator(
                    standalone=True,
                    clusterwide=True,
                    memo=self._memo,
                    stop_flag=self._stop,
                    ready_flag=self._ready,
                )
            )
        except BaseException as error:  # reported by start() and the log
            self._error = error
            logging.getLogger("steward.embedded").exception("the operator stopped")


def _login_from_environment() -> None:
    """Log in with the kubeconfig ``$KUBECONFIG`` names now.

    kopf's default login goes through the kubernetes client, whose default kubeconfig path is
    read from the environment when the client is imported, before the demo points it at its
    cluster. Registered here, at start, so that ``steward run`` keeps kopf's defaults.
    """
    if not _LOGIN_REGISTERED:
        kopf.on.login(id="kubeconfig_from_environment")(kopf.login_with_kubeconfig)
        _LOGIN_REGISTERED.append(True)


_LOGIN_REGISTERED: list[bool] = []  # once per process: kopf's registry is global


def _log_to(path: Path) -> None:
    """Send every log record to ``path`` only (the terminal shows the caller's display)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    logging.getLogger("kopf.objects").setLevel(logging.WARNING)
