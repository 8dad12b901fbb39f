#!/usr/bin/env bash
# Container healthchecks used by docker-compose.yml:
#   scripts/healthcheck.sh web      GET /v1/health answers {"status": "ok"}
#   scripts/healthcheck.sh worker   this container's Celery worker answers a ping
#   scripts/healthcheck.sh beat     the beat process in its pidfile is alive
#   scripts/healthcheck.sh stream   the trade_updates consumer (profile "alpaca") is running
# Prints nothing secret: no environment, no URLs.
set -euo pipefail

case "${1:-}" in
web)
    # Host: the first ALLOWED_HOSTS entry (else localhost) so Django accepts it;
    # X-Forwarded-Proto: https so SECURE_SSL_REDIRECT does not bounce the probe
    # (settings trust that header, as they would from the TLS proxy).
    exec python - <<'PY'
import json, os, sys, urllib.request

hosts = [h.strip().lstrip(".") for h in os.environ.get("ALLOWED_HOSTS", "").split(",") if h.strip()]
host = next((h for h in hosts if h and h != "*"), "localhost")
port = os.environ.get("HEALTHCHECK_PORT", "8000")
request = urllib.request.Request(
    f"http://127.0.0.1:{port}/v1/health", headers={"Host": host, "X-Forwarded-Proto": "https"}
)
try:
    with urllib.request.urlopen(request, timeout=5) as response:
        ok = response.status == 200 and json.load(response).get("status") == "ok"
except Exception as exc:  # noqa: BLE001 - any failure is "unhealthy"
    print(f"health check failed: {type(exc).__name__}: {exc}")
    sys.exit(1)
print("ok" if ok else "unexpected health answer")
sys.exit(0 if ok else 1)
PY
    ;;
worker)
    # The worker runs with --hostname=celery@%h; %h is this container's hostname.
    exec celery -A backoffice inspect ping --destination "celery@${HOSTNAME:-$(hostname)}" --timeout 10
    ;;
beat)
    pidfile=${BEAT_PIDFILE:-/tmp/celerybeat.pid}
    [ -s "$pidfile" ] || { echo "no beat pidfile at $pidfile"; exit 1; }
    pid=$(cat "$pidfile")
    kill -0 "$pid" 2>/dev/null || { echo "beat (pid $pid) is not running"; exit 1; }
    echo "beat pid $pid alive"
    ;;
stream)
    # The consumer reconnects by itself (alpaca-py's back-off): healthy while it runs.
    if grep -qs stream_trade_updates /proc/[0-9]*/cmdline; then echo "stream consumer running"; exit 0; fi
    echo "no stream_trade_updates process"
    exit 1
    ;;
*)
    echo "usage: $0 web|worker|beat|stream" >&2
    exit 2
    ;;
esac
