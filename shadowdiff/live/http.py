"""The sidecar's HTTP face: ``/api/status``, ``/metrics`` (Prometheus text) and ``/healthz``.

Everything is computed from a ``status()`` callable (the sidecar's published snapshot) at request time,
so a scrape never waits on the shadow; the layer knows nothing else of the sidecar. Loopback only: the
sidecar checks the address before it binds, and every request must name
a loopback ``Host`` (``127.0.0.1``, ``localhost``, ``[::1]``, with or without a port), else 403: a web page
cannot reach the sidecar through DNS rebinding. No answer echoes request data (errors are fixed text).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from shadowdiff import __version__

Status = Callable[[], dict[str, Any]]


class Metrics(Collector):
    """Prometheus families computed from the sidecar's status at scrape time."""

    def __init__(self, status: Status) -> None:
        self.status = status

    def collect(self) -> Any:
        status = self.status()
        bot, cov = status["state_machine_shadow"], status["coverage"]
        checks = CounterMetricFamily(
            "shadowdiff_sidecar_checks", "Records checked against the shadow", labels=["check"]
        )
        checks.add_metric(["transition"], bot["transition_checks"])
        checks.add_metric(["invariant"], bot["invariant_checks"])
        checks.add_metric(["call"], cov["calls_checked"])
        yield checks
        divergences = CounterMetricFamily("shadowdiff_sidecar_divergences", "Divergences found",
                                          labels=["kind", "event_type"])  # fmt: skip
        for kind, by_event in status["divergences_by_kind"].items():
            for event_type, n in by_event.items():
                divergences.add_metric([kind, event_type], n)
        yield divergences
        failures = CounterMetricFamily(
            "shadowdiff_sidecar_shadow_failures", "Shadow failures", labels=["kind"]
        )
        for kind, n in status["failures_by_kind"].items():
            failures.add_metric([kind], n)
        yield failures
        drops = CounterMetricFamily(
            "shadowdiff_sidecar_dropped", "Records not checked, by where", labels=["where"]
        )
        drops.add_metric(["tap"], cov["dropped_by_tap"])
        drops.add_metric(["sidecar_skip"], cov["skipped_by_sidecar"])
        drops.add_metric(["malformed"], cov["malformed"])
        drops.add_metric(["unrecorded"], cov["unrecorded"])
        yield drops
        received = CounterMetricFamily("shadowdiff_sidecar_received", "Step and call records received")
        received.add_metric([], cov["received"])
        yield received
        restarts = CounterMetricFamily("shadowdiff_sidecar_shadow_restarts", "Shadow process restarts")
        restarts.add_metric([], status["shadow"]["restarts"])
        yield restarts
        depth = GaugeMetricFamily(
            "shadowdiff_sidecar_queue_depth", "Received records not yet checked", labels=["unit"]
        )
        depth.add_metric(["records"], cov["lag_records"])
        depth.add_metric(["bytes"], cov["lag_bytes"])
        yield depth
        up = GaugeMetricFamily("shadowdiff_sidecar_uptime_seconds", "Seconds since the sidecar started")
        up.add_metric([], status["uptime_s"])
        yield up


LOOPBACK_HOST = re.compile(r"(?:127\.0\.0\.1|localhost|\[::1\])(?::[0-9]{1,5})?", re.IGNORECASE)


def loopback_host(value: str | None) -> bool:
    """A ``Host`` header naming loopback (a rebinding page's Host names the attacker's domain)."""
    return value is not None and LOOPBACK_HOST.fullmatch(value.strip()) is not None


def handler(status: Status, registry: CollectorRegistry) -> type[BaseHTTPRequestHandler]:
    """Serves ``/api/status`` (``status()`` as JSON), ``/metrics`` (``registry``) and ``/healthz``."""

    class Handler(BaseHTTPRequestHandler):
        server_version = f"shadowdiff-sidecar/{__version__}"
        sys_version = ""
        error_message_format = "%(code)d %(message)s\n"
        error_content_type = "text/plain; charset=utf-8"

        def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
            # the standard phrase only: the default message quotes the request line back
            super().send_error(code, None, None)

        def do_GET(self) -> None:
            if len(self.headers.get_all("Host") or []) != 1 or not loopback_host(self.headers.get("Host")):
                self._send(403, "text/plain", b"forbidden: the Host header must name loopback\n")
                return
            path = self.path.split("?", 1)[0].rstrip("/") or "/"
            if path == "/api/status":
                self._send(200, "application/json", json.dumps(status()).encode())
            elif path == "/metrics":
                self._send(200, "text/plain; version=0.0.4; charset=utf-8", generate_latest(registry))
            elif path == "/healthz":
                self._send(200, "text/plain", b"ok\n")
            else:
                self._send(404, "text/plain", b"not found\n")

        def _send(self, code: int, kind: str, body: bytes) -> None:
            self.send_response(code)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler
