"""The one door to Prometheus: a fixed set of range queries per accounting window.

Built on prometheus-api-client. TLS certificates are verified unless switched off; a bearer
token is read from a file (a service-account token is rotated, so it is re-read per window);
requests time out and are retried on connection errors and 502/503/504 with backoff.
Everything that goes wrong (unreachable, timeout, an HTTP error, a body that is not a query
result) raises :class:`PrometheusError`, which the accounting turns into ``DataStale``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import requests
from prometheus_api_client import PrometheusConnect
from prometheus_api_client.exceptions import PrometheusApiClientException
from urllib3.util.retry import Retry

from steward.cost.usage import Grid
from steward.observe.queries import QueryConfig

#: A series as Prometheus returns it: its labels, and step index -> value.
Labels = Mapping[str, str]


@dataclass(frozen=True)
class Series:
    labels: Labels
    values: dict[int, float]


Results = dict[str, list[Series]]


class PrometheusError(Exception):
    """Prometheus could not answer, or answered something that is not a query result."""


@dataclass(frozen=True)
class PrometheusSettings:
    """Where Prometheus is and how to talk to it."""

    url: str
    bearer_token_file: Path | None = None
    verify_tls: bool = True
    ca_file: Path | None = None
    timeout_seconds: float = 30.0
    retries: int = 2


RETRY_STATUSES: Final = (502, 503, 504)


class Prometheus:
    """Runs every configured query once per window. ``queries_issued`` counts HTTP queries."""

    def __init__(self, settings: PrometheusSettings, config: QueryConfig) -> None:
        self._settings = settings
        self._queries = config.resolved()
        self.queries_issued = 0

    @property
    def query_names(self) -> tuple[str, ...]:
        return tuple(self._queries)

    def window(self, grid: Grid) -> Results:
        """Each query over the window's grid (``t_0`` to ``t_steps``), as series by index."""
        client = self._client()
        return {
            name: self._range(client, name, query, grid) for name, query in self._queries.items()
        }

    def _client(self) -> PrometheusConnect:
        settings = self._settings
        headers = {}
        if settings.bearer_token_file is not None:
            try:
                token = settings.bearer_token_file.read_text(encoding="utf-8").strip()
            except OSError as error:
                raise PrometheusError(f"cannot read the bearer token: {error}") from None
            headers["Authorization"] = f"Bearer {token}"
        retry = Retry(
            total=settings.retries,
            backoff_factor=0.5,
            status_forcelist=RETRY_STATUSES,
            allowed_methods=frozenset({"GET"}),
            raise_on_status=False,
        )
        client = PrometheusConnect(
            url=settings.url,
            headers=headers,
            disable_ssl=not settings.verify_tls,
            retry=retry,
            timeout=math.ceil(settings.timeout_seconds),
        )
        if settings.verify_tls and settings.ca_file is not None:
            client._session.verify = str(settings.ca_file)  # the client has no CA option
        return client

    def _range(self, client: PrometheusConnect, name: str, query: str, grid: Grid) -> list[Series]:
        self.queries_issued += 1
        try:
            result = client.custom_query_range(
                query,
                start_time=grid.start,
                end_time=grid.end,
                step=f"{grid.step_seconds}s",
                params={"timeout": f"{math.ceil(self._settings.timeout_seconds)}s"},
            )
        except (requests.RequestException, PrometheusApiClientException, ValueError) as error:
            raise PrometheusError(f"query {name}: {error}") from None
        return parse_matrix(name, result, grid)


def parse_matrix(name: str, result: Any, grid: Grid) -> list[Series]:
    """A ``query_range`` result as series on the grid; non-finite values are dropped.

    Raises :class:`PrometheusError` when the body is not a matrix.
    """
    if not isinstance(result, list):
        raise PrometheusError(
            f"query {name}: expected a list of series, got {type(result).__name__}"
        )
    start = grid.start.timestamp()
    series = []
    for item in result:
        try:
            labels = {str(k): str(v) for k, v in item["metric"].items()}
            values = {}
            for stamp, text in item["values"]:
                value = float(text)
                index = round((float(stamp) - start) / grid.step_seconds)
                if math.isfinite(value) and 0 <= index <= grid.steps:
                    values[index] = value
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise PrometheusError(f"query {name}: malformed series: {error!r}") from None
        series.append(Series(labels, values))
    return series


def aligned_end(now: datetime, step_seconds: int, lag_seconds: int) -> datetime:
    """The latest grid time at least ``lag_seconds`` before ``now`` (Prometheus needs that long
    to have scraped and stored the samples of a moment)."""
    stamp = now.timestamp() - lag_seconds
    return datetime.fromtimestamp(stamp - stamp % step_seconds, tz=now.tzinfo)
