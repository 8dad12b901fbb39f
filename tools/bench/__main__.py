"""python -m tools.bench [--quick] [--only entry,precheck,sync,killswitch,admin,reconcile] [sizes...]

Creates (dropping it first) its own PostgreSQL database, migrates it, runs the
benchmarks, prints one table and writes it as JSON to var/bench/. See
docs/benchmarks.md for what each figure measures.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tools.bench.env import BenchSetupError, database_name, default_url, prepare

BASE_DIR = Path(__file__).resolve().parents[2]
OUT_DIR = BASE_DIR / "var" / "bench"
BENCHMARKS = ("entry", "precheck", "sync", "killswitch", "admin", "reconcile")


def _ints(text: str) -> list[int]:
    return [int(part.replace("_", "")) for part in text.split(",") if part.strip()]


@dataclass
class Sizes:
    entry_clients: list[int]
    entry_seconds: float
    entry_warmup: float
    entry_workers: int
    latency_clients: list[int]
    broker_ms: int
    burst_size: int
    burst_repeats: int
    history: list[int]
    check_repeats: int
    submit_repeats: int
    evaluate_seconds: float
    admin_repeats: int
    sync_orders: list[int]
    sync_memory: list[int]
    sync_closed: int
    killswitch_orders: int
    positions: int
    brokers: list[str]


def parse(argv: list[str] | None) -> tuple[argparse.Namespace, Sizes]:
    parser = argparse.ArgumentParser(prog="python -m tools.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help=f"comma-separated subset of: {', '.join(BENCHMARKS)}")
    parser.add_argument("--quick", action="store_true", help="smaller sizes and shorter runs (a smoke test, ~3 min)")
    parser.add_argument(
        "--database-url", default=None,
        help="the benchmark's own PostgreSQL database; it is DROPPED and recreated. Default: BENCH_DATABASE_URL, "
        "else bench_backoffice on DATABASE_URL's server when that is PostgreSQL, else "
        "postgresql://postgres@127.0.0.1:5432/bench_backoffice",
    )
    parser.add_argument("--out", default=str(OUT_DIR), help="where the JSON goes (default var/bench)")
    sizes = parser.add_argument_group("sizes (defaults: full run; --quick in brackets)")
    sizes.add_argument("--entry-clients", help="concurrent API clients per level [1,8,32]; default 1,8,32")
    sizes.add_argument("--entry-seconds", type=float, help="measured seconds per endpoint and level [3]; default 8")
    sizes.add_argument("--entry-workers", type=int, help="gunicorn sync workers; default 2 x CPUs + 1")
    sizes.add_argument("--latency-clients", help="clients for added latency and lock hold; default 1,8")
    sizes.add_argument("--broker-ms", type=int, help="simulated submit round trip for latency/burst; default 50")
    sizes.add_argument("--burst", type=int, help="orders of one strategy sent at once; default 50")
    sizes.add_argument(
        "--history", help="historical orders (and fills), small,large [1000,100000]; default 1000,1000000"
    )
    sizes.add_argument("--check-repeats", type=int, help="timed pre-trade checks per size [100]; default 300")
    sizes.add_argument("--sync-orders", help="open orders per sync call count [10,1000,5000]; default 10,1000,10000")
    sizes.add_argument(
        "--sync-memory", help="small,large open orders for the memory ratio [100,5000]; default 100,10000"
    )
    sizes.add_argument(
        "--sync-closed",
        type=int,
        help="orders closed at the broker since the oldest working order [2000]; default 10000 (0: skip)",
    )
    sizes.add_argument("--killswitch-orders", type=int, help="working orders at activation; default 1000")
    sizes.add_argument("--positions", type=int, help="positions to reconcile; default 1000")
    sizes.add_argument("--brokers", help="alpaca,simulated (default both) for sync, killswitch, reconcile")
    args = parser.parse_args(argv)
    args.database_url = args.database_url or default_url(dict(os.environ))
    only = [name.strip() for name in args.only.split(",") if name.strip()] or list(BENCHMARKS)
    unknown = set(only) - set(BENCHMARKS)
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(sorted(unknown))}: choose from {', '.join(BENCHMARKS)}")
    args.only = only
    quick = args.quick
    cpus = os.cpu_count() or 2
    chosen = Sizes(
        entry_clients=_ints(args.entry_clients or "1,8,32"),
        entry_seconds=args.entry_seconds or (3.0 if quick else 8.0),
        entry_warmup=1.0 if quick else 2.0,
        entry_workers=args.entry_workers or 2 * cpus + 1,
        latency_clients=_ints(args.latency_clients or "1,8"),
        broker_ms=args.broker_ms if args.broker_ms is not None else 50,
        burst_size=args.burst or 50,
        burst_repeats=2 if quick else 4,
        history=_ints(args.history or ("1000,100000" if quick else "1000,1000000")),
        check_repeats=args.check_repeats or (100 if quick else 300),
        submit_repeats=40 if quick else 100,
        evaluate_seconds=1.0 if quick else 2.0,
        admin_repeats=5 if quick else 10,
        sync_orders=_ints(args.sync_orders or ("10,1000,5000" if quick else "10,1000,10000")),
        sync_memory=_ints(args.sync_memory or ("100,5000" if quick else "100,10000")),
        sync_closed=args.sync_closed if args.sync_closed is not None else (2000 if quick else 10000),
        killswitch_orders=args.killswitch_orders or 1000,
        positions=args.positions or 1000,
        brokers=[b.strip() for b in (args.brokers or "alpaca,simulated").split(",") if b.strip()],
    )
    if len(chosen.history) != 2 or len(chosen.sync_memory) != 2:
        parser.error("--history and --sync-memory take exactly two sizes: small,large")
    return args, chosen


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    args, sizes = parse(argv)
    try:
        database_name(args.database_url)
        prepare(args.database_url)
    except BenchSetupError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2

    from tools.bench import db

    started = time.perf_counter()
    log(f"recreating database {database_name(args.database_url)}")
    try:
        db.recreate(args.database_url)
    except Exception as exc:  # noqa: BLE001  (psycopg.OperationalError and friends: one line, no traceback)
        print(f"bench: cannot (re)create the benchmark database: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2

    import django

    django.setup()
    log("migrating")
    db.migrate()

    from tools.bench.suite import run

    sections = run(only=args.only, sizes=sizes, log=log, out_dir=Path(args.out))
    from tools.bench import report

    total = time.perf_counter() - started
    header = (
        f"Benchmarks ({'--quick' if args.quick else 'default'} sizes, {', '.join(args.only)}, {total:.0f}s, "
        f"{os.cpu_count()} CPUs, "
        f"database {database_name(args.database_url)}); every figure is measured inside this run"
    )
    table = report.render(sections, header)
    print(table)
    run_info: dict[str, Any] = {
        "quick": args.quick,
        "only": args.only,
        "sizes": sizes.__dict__,
        "seconds": total,
        "cpus": os.cpu_count(),
        "command": "python -m tools.bench " + " ".join(sys.argv[1:] if argv is None else argv),
    }
    path = report.write_json(sections, out_dir=Path(args.out), run=run_info, table=table)
    print(f"\nJSON: {path.relative_to(BASE_DIR) if path.is_relative_to(BASE_DIR) else path}")
    return 1 if any(s.error for s in sections) else 0


if __name__ == "__main__":
    sys.exit(main())
