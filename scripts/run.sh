#!/usr/bin/env bash
# The embedded demo in one foreground command (what `make run` calls).
#
# 1. migrate, setup_periodic_tasks, bootstrap_demo (prints a login once, on an
#    empty database);
# 2. start runserver on 127.0.0.1:$PORT, a Celery worker and Celery beat, each
#    in its own process group with its output appended to var/log/<name>.log;
# 3. once all three are up, write the web address to var/run-url (where
#    demo_trader and the README's tour find it; removed on stop) and say where
#    the credentials are (never the credentials themselves);
# 4. supervise: Ctrl-C / SIGTERM / SIGHUP stops all three (SIGTERM, then
#    SIGKILL after STOP_TIMEOUT seconds) and exits 0, a requested stop; if any
#    one exits on its own, the other two are stopped too and this script exits
#    non-zero.
#
# Debug mode, the dev key, SQLite and the filesystem queue are not decided
# here: backoffice/config.py applies the embedded default to every manage.py
# process of this checkout when no production setting is given, so a second
# terminal gets the same database, key and queue.
#
# Never print a credential here: no `set -x`, no env dumps, no URLs that may
# hold a password (only their scheme is shown).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
VENV=${VENV:-$ROOT/.venv}
PY=$VENV/bin/python
CELERY=$VENV/bin/celery
LOG_DIR=$ROOT/var/log
PORT=${PORT:-8000}
STOP_TIMEOUT=${STOP_TIMEOUT:-20}
NAMES=(web worker beat)

RUN_URL_FILE=$ROOT/var/run-url
export PYTHONUNBUFFERED=1

# Status lines must never kill the supervisor: if stdout is a pipe whose
# reader died (`make run | tee x` and Ctrl-C), the write just fails.
say() { { printf '[run %s] %s\n' "$(date +%H:%M:%S)" "$*"; } 2>/dev/null || true; }
die() { say "$*" >&2; exit 1; }

if ! [[ $PORT =~ ^[0-9]+$ ]] || (( PORT < 1 || PORT > 65535 )); then
    die "PORT=$PORT is not a TCP port (1-65535)"
fi
[[ $STOP_TIMEOUT =~ ^[0-9]+$ ]] || die "STOP_TIMEOUT=$STOP_TIMEOUT is not a number of seconds"
[ -x "$PY" ] || die "no virtual environment at $VENV: run 'make run' (it creates one)"
mkdir -p "$LOG_DIR"

# One demo per checkout: two beats on one database would schedule every task
# twice. The lock is inherited by the three processes, so it is held for as
# long as any of them lives.
exec 9>"$ROOT/var/run.lock"
if ! flock -n 9; then
    die "another 'make run' (or processes it left behind) is running in this checkout; see: pgrep -af 'manage.py runserver|celery -A backoffice'"
fi
rm -f "$RUN_URL_FILE"  # left by a run that was killed outright; rewritten once web is up

# Stop handling first, so Ctrl-C during the setup steps is a clean stop too
# (nothing is running yet; the migration in progress rolls back).
declare -A PID=() OFFSET=()
stopping=0

start() {
    local name=$1; shift
    local log=$LOG_DIR/$name.log
    printf '==== %s starting %s\n' "$(date -u +%FT%TZ)" "$name" >>"$log"
    OFFSET[$name]=$(stat -c %s "$log")
    # setsid: own process group, so a stop signal reaches the whole subtree
    # and only this script decides when (job control is off here, so the
    # child is not a group leader and setsid execs without forking: $! is it).
    setsid "$@" </dev/null >>"$log" 2>&1 &
    PID[$name]=$!
}

alive() { kill -0 -- "-$1" 2>/dev/null; }

stop_all() {
    local name pid deadline
    for name in "${NAMES[@]}"; do
        pid=${PID[$name]:-}
        if [ -n "$pid" ]; then kill -TERM -- "-$pid" 2>/dev/null || true; fi
    done
    deadline=$((SECONDS + STOP_TIMEOUT))
    for name in "${NAMES[@]}"; do
        pid=${PID[$name]:-}
        [ -n "$pid" ] || continue
        while alive "$pid" && (( SECONDS < deadline )); do sleep 0.2; done
        if alive "$pid"; then
            say "$name did not stop within ${STOP_TIMEOUT}s; killing it"
            kill -KILL -- "-$pid" 2>/dev/null || true
        fi
        wait "$pid" 2>/dev/null || true
    done
}

on_signal() {
    trap '' INT TERM HUP
    (( stopping )) && return
    stopping=1
    if (( ${#PID[@]} )); then
        say "received SIG$1: stopping web, worker and beat"
    else
        say "received SIG$1 during setup: stopping (web, worker and beat were not started yet)"
    fi
    stop_all
    say "stopped"
    rm -f "$RUN_URL_FILE"
    trap - EXIT
    # A requested stop is a success: Ctrl-C must not read like a failure.
    exit 0
}

on_exit() {
    local rc=$?
    trap '' INT TERM HUP
    if (( ! stopping )) && (( ${#PID[@]} )); then
        stopping=1
        stop_all
    fi
    rm -f "$RUN_URL_FILE"
    exit "$rc"
}

trap 'on_signal INT' INT
trap 'on_signal TERM' TERM
trap 'on_signal HUP' HUP
trap on_exit EXIT

# --- 1. prepare -------------------------------------------------------------

# Output of one-shot steps goes to var/log/setup.log; on failure its tail is
# shown (settings print a single `configuration error: ...` line on bad env).
setup_step() {
    local what=$1 log=$LOG_DIR/setup.log offset; shift
    printf '==== %s %s\n' "$(date -u +%FT%TZ)" "$what" >>"$log"
    offset=$(stat -c %s "$log")
    if ! "$PY" manage.py "$@" </dev/null >>"$log" 2>&1; then
        say "$what failed; its last lines (var/log/setup.log):" >&2
        tail -c +"$((offset + 1))" "$log" | tail -n 15 >&2 || true
        exit 1
    fi
}

db_kind=${DATABASE_URL:-sqlite}; db_kind=${db_kind%%:*}
mq_kind=${CELERY_BROKER_URL:-${REDIS_URL:-filesystem}}; mq_kind=${mq_kind%%:*}
mode=$("$PY" -c 'import os, sys; from backoffice import config
given = config.production_settings_given(os.environ); debug = os.environ.get("DJANGO_DEBUG", "").strip()
print("embedded default" if config.embedded_default_applies(os.environ) else
      "DJANGO_DEBUG=" + debug if debug else "production settings: " + ", ".join(given))' 2>/dev/null) || mode=unknown
say "mode=${mode} trading_mode=${TRADING_MODE:-paper} broker=${BROKER:-auto} database=${db_kind} celery=${mq_kind}"
say "migrating the database"
setup_step "migrate" migrate --noinput
setup_step "setup_periodic_tasks" setup_periodic_tasks
# bootstrap_demo prints how to log in once, to this terminal only (never to
# var/log); tolerate its absence while it is being written.
if "$PY" manage.py help bootstrap_demo </dev/null >/dev/null 2>&1; then
    "$PY" manage.py bootstrap_demo --port "$PORT" </dev/null || die "bootstrap_demo failed"
fi

# --- 2. start ---------------------------------------------------------------


start web "$PY" manage.py runserver "127.0.0.1:$PORT" --noreload
start worker "$CELERY" -A backoffice worker --pool=threads --concurrency=2 --loglevel=INFO
start beat "$CELERY" -A backoffice beat --loglevel=INFO
# With Alpaca as the broker, its trade_updates stream brings fills to the
# ledger as they happen; the status sync stays the safety net.
broker=$("$PY" manage.py shell -c 'from django.conf import settings; print(settings.BROKER)' </dev/null 2>/dev/null) \
    || broker=unknown
if [ "$broker" = alpaca ]; then
    NAMES+=(stream)
    start stream "$PY" manage.py stream_trade_updates
fi
# From here on a broken stdout pipe must not kill this script (and with it
# the supervision); set after the starts so the children keep default SIGPIPE.
trap '' PIPE
say "started web (pid ${PID[web]}), worker (pid ${PID[worker]}), beat (pid ${PID[beat]})${PID[stream]:+, stream (pid ${PID[stream]})}; logs in var/log/"

# --- 3. supervise -----------------------------------------------------------

# A process that exited on its own: say which, show its log tail, stop the
# others and fail.
check_children() {
    local name pid rc
    for name in "${NAMES[@]}"; do
        pid=${PID[$name]}
        if ! kill -0 "$pid" 2>/dev/null; then
            rc=0; wait "$pid" 2>/dev/null || rc=$?
            say "$name (pid $pid) exited with status $rc; stopping the others. Last lines of var/log/$name.log:" >&2
            tail -c +"$((OFFSET[$name] + 1))" "$LOG_DIR/$name.log" 2>/dev/null | tail -n 15 >&2 || true
            stopping=1
            stop_all
            rm -f "$RUN_URL_FILE"
            trap - EXIT
            exit 1
        fi
    done
}

new_output() { tail -c +"$((OFFSET[$1] + 1))" "$LOG_DIR/$1.log" 2>/dev/null; }

health_ok() {
    "$PY" - "$PORT" <<'PY' 2>/dev/null
import sys, urllib.request
try:
    with urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/v1/health", timeout=2) as r:
        sys.exit(0 if r.status == 200 else 1)
except Exception:
    sys.exit(1)
PY
}

# Stream one status line per component as it becomes ready.
declare -A READY=()
ready_deadline=$((SECONDS + 120))
while (( ${#READY[@]} < ${#NAMES[@]} )); do
    check_children
    if [ -z "${READY[web]:-}" ] && health_ok; then
        READY[web]=1; say "web ready: http://127.0.0.1:$PORT/admin/ and http://127.0.0.1:$PORT/v1/health"
    fi
    if [ -z "${READY[worker]:-}" ] && new_output worker | grep ' ready\.' >/dev/null; then
        READY[worker]=1; say "worker ready"
    fi
    if [ -z "${READY[beat]:-}" ] && new_output beat | grep 'beat: Starting' >/dev/null; then
        READY[beat]=1; say "beat running"
    fi
    if [ -n "${PID[stream]:-}" ] && [ -z "${READY[stream]:-}" ] && new_output stream | grep 'consuming trade_updates' >/dev/null; then
        READY[stream]=1; say "stream consuming Alpaca's trade_updates"
    fi
    if (( SECONDS > ready_deadline )); then
        say "still waiting for: $(for n in "${NAMES[@]}"; do [ -n "${READY[$n]:-}" ] || printf '%s ' "$n"; done)(see var/log/)" >&2
        ready_deadline=$((SECONDS + 120))
    fi
    sleep 0.5
done
printf 'http://127.0.0.1:%s\n' "$PORT" >"$RUN_URL_FILE"
say "all running at http://127.0.0.1:$PORT (address in var/run-url)"
# Every start, not only the first: where the credentials are, never what they are.
if [ -f "$ROOT/var/demo-credentials" ]; then
    say "admin:     http://127.0.0.1:$PORT/admin/ as 'officer', password in var/demo-credentials (only you can read it)"
    say "API token: var/demo-api-token (client 'demo-client', strategy 'demo'); API docs at /v1/docs once logged in to the admin"
else
    say "admin:     http://127.0.0.1:$PORT/admin/ (no demo officer here: .venv/bin/python manage.py create_risk_officer NAME)"
fi
say "tour: README.md, 'A tour', in a second terminal; press Ctrl-C to stop"

# Block until any child exits (or a trapped signal interrupts the wait).
while :; do
    wait -n || true
    check_children
done
