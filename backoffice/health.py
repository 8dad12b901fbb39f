"""GET /v1/health: overall status for anyone; the parts for authenticated callers. Never a secret."""

from __future__ import annotations

import contextlib
import time
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.utils import timezone
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from backoffice.jobs import job_statuses
from brokers.exceptions import BrokerError
from brokers.registry import get_broker
from core.api import PROBLEM, problem
from risk.models import KillSwitch

BROKER_PROBE_CACHE_S = 5


def _database() -> dict[str, Any]:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return {"ok": True, "vendor": connection.vendor}
    except Exception as exc:  # noqa: BLE001  (health reports any failure; it must not become a 500)
        return {"ok": False, "vendor": connection.vendor, "error": type(exc).__name__}


def _cache() -> dict[str, Any]:
    try:
        cache.set("health-probe", "1", 10)
        return {"ok": cache.get("health-probe") == "1"}
    except Exception as exc:  # noqa: BLE001  (health reports any failure; it must not become a 500)
        return {"ok": False, "error": type(exc).__name__}


def _broker() -> dict[str, Any]:
    cached = cache.get("health-broker")
    if cached is not None:
        return cached
    broker = get_broker()
    started = time.monotonic()
    try:
        broker.get_clock()
        result = {"connected": True, "last_error": None}
    except BrokerError as exc:
        # The exception's class, never its text: a message could echo a request.
        result = {"connected": False, "last_error": type(exc).__name__}
    result.update(
        name=broker.name, mode=broker.mode, latency_ms=round((time.monotonic() - started) * 1000, 1)
    )
    with contextlib.suppress(Exception):  # a cache outage is reported by _cache(); the probe still answers
        cache.set("health-broker", result, BROKER_PROBE_CACHE_S)
    return result


def _celery() -> dict[str, Any]:
    jobs = {
        job.name: {
            "last_success": job.last_success.isoformat() if job.last_success else None,
            "stale": job.stale,
            "disabled": job.disabled,
        }
        for job in job_statuses(timezone.now())
    }
    return {"last_sync": jobs["order_sync"], "last_snapshot": jobs["risk_eval"], "last_reconcile": jobs["reconcile"]}


class HealthView(APIView):
    permission_classes = [AllowAny]

    @extend_schema(
        operation_id="health",
        responses={200: OpenApiResponse(inline_serializer("Health", {"status": serializers.CharField()}),
                                        description="ok / degraded; more fields when authenticated"),
                   (401, PROBLEM): problem("A token or session was given and is invalid"),
                   503: OpenApiResponse(inline_serializer("HealthDown", {"status": serializers.CharField()}),
                                        description="down")},
    )
    def get(self, request: Request) -> Response:
        database = _database()
        if not database["ok"]:
            return Response({"status": "down"}, status=503)
        if not request.user.is_authenticated:
            return Response({"status": "ok"})
        cache_state, broker, celery = _cache(), _broker(), _celery()
        stale = any(job["stale"] or job["disabled"] for job in celery.values())
        degraded = not cache_state["ok"] or not broker["connected"] or stale
        switch = KillSwitch.objects.filter(strategy__isnull=True).values("active", "activated_at").first() or {}
        return Response(
            {
                "status": "degraded" if degraded else "ok",
                "database": database,
                "cache": cache_state,
                "broker": broker,
                "celery": celery,
                "kill_switch": {"global_active": bool(switch.get("active"))},
                "trading_mode": settings.TRADING_MODE,
            }
        )
