"""The observe layer issues the same queries for 10 and 1,000 workloads, reads what a real
Prometheus returns, refuses garbage, and takes query overrides by name only."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from steward.cost.usage import Grid
from steward.observe.prometheus import Prometheus, PrometheusError, PrometheusSettings
from steward.observe.queries import DEFAULT_QUERIES, QueryConfig, load_query_config
from steward.observe.usage import build_usage
from steward.policy.placement import PLATFORMS

GRID = Grid(datetime(2026, 11, 1, tzinfo=UTC), 15, 4)


class _Server:
    """A stand-in Prometheus HTTP API answering query_range with ``pods`` GPU pods."""

    def __init__(self) -> None:
        self.pods = 0
        self.requests: list[str] = []
        self.garbage = False

    def answer(self, query: str) -> Any:
        stamps = [GRID.start.timestamp() + 15 * i for i in range(GRID.steps + 1)]
        if self.garbage:
            return {"status": "success", "data": {"resultType": "matrix", "result": {"x": 1}}}
        series = []
        if query == DEFAULT_QUERIES["pod_gpus"]:
            series = [
                {"metric": {"namespace": "t", "pod": f"p{i}", "node": "n"},
                 "values": [[s, "1"] for s in stamps]}
                for i in range(self.pods)
            ]  # fmt: skip
        return {"status": "success", "data": {"resultType": "matrix", "result": series}}


@pytest.fixture
def server() -> Iterator[tuple[_Server, str]]:
    state = _Server()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urlparse(self.path)
            query = parse_qs(url.query)["query"][0]
            state.requests.append(query)
            body = json.dumps(state.answer(query)).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield state, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def _observe(url: str) -> tuple[Prometheus, Any]:
    prometheus = Prometheus(PrometheusSettings(url=url, timeout_seconds=5), QueryConfig())
    results = prometheus.window(GRID)
    usage = build_usage(
        results, GRID, capacity_labels=PLATFORMS["karpenter"],
        required_jobs=("kube-state-metrics",), max_sample_age_seconds=60,
    )  # fmt: skip
    return prometheus, usage


def test_the_query_count_is_the_same_for_10_and_1000_workloads(server: tuple[_Server, str]) -> None:
    state, url = server
    counts = {}
    for pods in (10, 1000):
        state.pods, state.requests = pods, []
        prometheus, usage = _observe(url)
        assert len(usage.pods) == pods
        counts[pods] = (len(state.requests), prometheus.queries_issued)
    assert counts[10] == counts[1000] == (len(DEFAULT_QUERIES), len(DEFAULT_QUERIES))


def test_garbage_from_prometheus_is_an_error_not_data(server: tuple[_Server, str]) -> None:
    state, url = server
    state.garbage = True
    with pytest.raises(PrometheusError, match="expected a list of series"):
        _observe(url)


def test_unreachable_prometheus_is_an_error() -> None:
    prometheus = Prometheus(
        PrometheusSettings(url="http://127.0.0.1:9", timeout_seconds=1, retries=0), QueryConfig()
    )
    with pytest.raises(PrometheusError, match="query"):
        prometheus.window(GRID)


def test_overrides_replace_queries_by_name_and_fill_in_the_jobs(tmp_path: Path) -> None:
    path = tmp_path / "queries.yaml"
    path.write_text(
        "queries:\n  gpu_power: max by (UUID, node, namespace, pod) (kepler_gpu_watts)\n"
        "requiredJobs: [ksm, kepler]\n"
    )
    resolved = load_query_config(path).resolved()
    assert resolved["gpu_power"].endswith("(kepler_gpu_watts)")
    assert 'job=~"ksm|kepler"' in resolved["scrape_age"]
    path.write_text("queries:\n  gpu_watts: x\n")
    with pytest.raises(ValueError, match="unknown queries"):
        load_query_config(path)


def test_steps_without_fresh_scrapes_are_not_covered() -> None:
    from steward.observe.prometheus import Series  # noqa: PLC0415

    ages = [Series({"job": "kube-state-metrics"}, {0: 3.0, 1: 4.0, 2: 80.0, 4: 5.0})]
    usage = build_usage(
        {"scrape_age": ages}, GRID, capacity_labels=PLATFORMS["karpenter"],
        required_jobs=("kube-state-metrics",), max_sample_age_seconds=60,
    )  # fmt: skip
    assert usage.covered == frozenset({0, 1, 4})
