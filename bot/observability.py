"""Prometheus metrics and log lines that never carry a secret."""

from __future__ import annotations

import logging
import re

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

_SECRET = re.compile(r"(xox[a-z]-[A-Za-z0-9-]+|xapp-[A-Za-z0-9-]+|v0=[0-9a-f]{16,})")


class Metrics:
    """One registry per process (tests build several apps in one interpreter)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("kpibot_requests_total", "Slack requests by kind", ["kind"], registry=r)
        self.ack_seconds = Histogram(
            "kpibot_ack_seconds", "Time to acknowledge a Slack request", registry=r,
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0),
        )
        self.entries = Counter("kpibot_entries_logged_total", "Values stored", ["origin"], registry=r)
        self.digests = Counter("kpibot_digests_posted_total", "Digests posted", ["kind"], registry=r)
        self.alerts = Counter("kpibot_alerts_posted_total", "Alert messages posted", ["state"], registry=r)
        self.deliveries = Counter(
            "kpibot_deliveries_total", "Scheduled messages by kind and outcome (posted, skipped, "
            "retry, failed)", ["kind", "outcome"], registry=r,
        )
        self.slack_errors = Counter(
            "kpibot_slack_api_errors_total", "Slack Web API errors", ["method", "error"], registry=r
        )

    def delivered(self, kind: str, outcome: str) -> None:
        """Counts a delivery; kinds are `digest-daily`, `alert-firing`, `nudge` and the like."""
        self.deliveries.labels(kind=kind, outcome=outcome).inc()
        if outcome != "posted":
            return
        family, _, detail = kind.partition("-")
        if family == "digest":
            self.digests.labels(kind=detail).inc()
        elif family == "alert":
            self.alerts.labels(state=detail).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)


class RedactSecrets(logging.Filter):
    """Scrubs tokens and signatures from every log record, whoever logged it."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if _SECRET.search(message):
            record.msg = _SECRET.sub("[redacted]", message)
            record.args = ()
        return True


def configure_logging(level: int = logging.INFO) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    handler.addFilter(RedactSecrets())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
