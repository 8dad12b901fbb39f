"""GET /metrics: Prometheus text format, for authenticated callers (like the details of /v1/health).

Request, response and exception metrics come from django-prometheus (its two
middlewares). The back office's own gauges are read from the database at
scrape time by one collector, so every web process answers the same numbers
and nothing has to remember to update a gauge when state changes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

from django.db.models import Count
from django.http import HttpResponse
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from rest_framework.request import Request
from rest_framework.views import APIView

from backoffice.jobs import job_statuses
from orders.models import BreakStatus, Order, ReconciliationBreak
from orders.selectors import trading_day_start, working_orders
from orders.states import WORKING, OrderStatus
from risk.models import BreakerState, KillSwitch, RiskState


def _gauge(name: str, documentation: str, labels: list[str] | None = None) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, labels=labels)


class BackofficeCollector:
    """The state an operator alerts on: switches, breaker, breaks, job ages, orders, denials."""

    def describe(self) -> Iterator[GaugeMetricFamily]:
        # Registration asks for names only: no query at import time.
        yield from self._families()

    def _families(self) -> list[GaugeMetricFamily]:
        return [
            _gauge("backoffice_kill_switch_active", "1 when the kill switch is active", ["scope", "strategy"]),
            _gauge("backoffice_circuit_breaker_state", "1 for the breaker's current state", ["state"]),
            _gauge("backoffice_reconciliation_open_breaks", "reconciliation breaks not yet acknowledged"),
            _gauge("backoffice_job_last_success_age_seconds", "seconds since the job last succeeded", ["job"]),
            _gauge("backoffice_job_stale", "1 when the job has not succeeded for 3 of its intervals", ["job"]),
            _gauge("backoffice_working_orders", "working orders by status, whatever their age", ["status"]),
            _gauge("backoffice_orders_today", "orders created this trading day, by status", ["status"]),
            _gauge("backoffice_denials_today", "pre-trade denials this trading day, by violation code", ["code"]),
        ]

    def collect(self) -> Iterator[GaugeMetricFamily]:
        (switches, breaker, breaks, job_age, job_stale, working, today, denials) = self._families()
        for slug, active in KillSwitch.objects.values_list("strategy__slug", "active"):
            switches.add_metric(["strategy" if slug else "global", slug or ""], 1 if active else 0)
        state = RiskState.current().breaker_state
        for value in BreakerState.values:
            breaker.add_metric([value], 1 if value == state else 0)
        breaks.add_metric([], ReconciliationBreak.objects.filter(status=BreakStatus.OPEN).count())
        for job in job_statuses(timezone.now()):
            if job.age_s is not None:
                job_age.add_metric([job.name], job.age_s)
            job_stale.add_metric([job.name], 1 if job.stale else 0)
        counts = dict(working_orders().values_list("status").annotate(n=Count("id")).values_list("status", "n"))
        for status in sorted(WORKING):
            working.add_metric([status], counts.get(status, 0))
        since = trading_day_start(timezone.now())
        created = Order.objects.filter(created_at__gte=since)
        counts = dict(created.values_list("status").annotate(n=Count("id")).values_list("status", "n"))
        for status in OrderStatus.values:
            today.add_metric([status], counts.get(status, 0))
        codes: Counter[str] = Counter()
        for violations in created.filter(status=OrderStatus.DENIED).values_list("violations", flat=True):
            codes.update(v.get("code", "unknown") for v in violations or [])
        for code, n in sorted(codes.items()):
            denials.add_metric([code], n)
        yield from (switches, breaker, breaks, job_age, job_stale, working, today, denials)


def install(registry: CollectorRegistry = REGISTRY) -> None:
    """Register the collector once per process (AppConfig.ready)."""
    if not getattr(registry, "_backoffice_installed", False):
        registry.register(BackofficeCollector())
        registry._backoffice_installed = True  # type: ignore[attr-defined]


class MetricsView(APIView):
    """Authenticated like /v1/health's details: a token (Prometheus: authorization type Token) or a session."""

    @extend_schema(exclude=True)
    def get(self, request: Request) -> HttpResponse:
        return HttpResponse(generate_latest(REGISTRY), content_type=CONTENT_TYPE_LATEST)

    def perform_content_negotiation(self, request: Request, force: bool = False) -> Any:
        # A scraper asks for text; refusals (401/403) still answer as problem+json.
        return super().perform_content_negotiation(request, force=True)
