"""Runs the selected benchmarks in an order that keeps them apart, and turns results into figures.

Execution order: the small-history stage of the pre-trade check and the
admin (so "1,000 orders" means a database with about that many), then the
sync, kill-switch and reconciliation benchmarks, then order entry over HTTP,
then the history is topped up to the large size and the pre-trade check and
the admin are measured again. The table lists them in the issue's order.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.conf import settings

from tools.bench import b_admin, b_entry, b_jobs, b_precheck, fixtures, history
from tools.bench.report import Section, check
from tools.bench.stats import ratio

Log = Callable[[str], None]


def _sections() -> dict[str, Section]:
    return {
        "entry": Section(
            "entry",
            "Order entry over HTTP vs a bare authenticated insert",
            "gunicorn (sync workers) on PostgreSQL with the simulated broker; N closed-loop clients, each its own "
            "API user and strategy, POST /v1/orders (0.01 AAPL market sell, full risk check, sent to the simulated "
            "venue) vs POST /bench/baseline-insert (same DRF token auth + JSON parser, one INSERT into "
            "bench_baseline_insert, a table the bench creates with raw SQL); ABBA-alternated segments; "
            "throughput = 2xx answers / wall time; latency = connect to last byte.",
        ),
        "precheck": Section(
            "precheck",
            "Pre-trade check vs history size; evaluate() throughput",
            "In-process on PostgreSQL. 'check' = the in-lock part of order_submit: lock RiskState, read the "
            "strategy, build_snapshot, evaluate (no write). 'order_submit' = the whole service incl. the INSERTs "
            "and the send to the simulated broker. Same book at both sizes (20 working orders, 5 positions); "
            "history = terminal orders (half filled, 2 fills each: as many fills as orders) with timestamps in the "
            "year before yesterday, bulk-loaded by INSERT ... SELECT generate_series, then VACUUM ANALYZE. "
            "evaluate() = the pure check on one snapshot, in a loop.",
        ),
        "sync": Section(
            "sync",
            "Status sync: broker calls per cycle, peak memory",
            "orders_sync() with N orders working locally and at the broker (5 of them filled at the broker "
            "meanwhile); calls from broker.counter and wall time of that cycle; peak = tracemalloc peak of the next "
            "(steady-state) cycle in this process. Brokers: AlpacaBroker (alpaca-py over HTTP) against the fake "
            "Alpaca in its own process, and the DB-backed simulated broker.",
        ),
        "killswitch": Section(
            "killswitch",
            "Kill switch with working orders",
            "killswitch_activate() (global; then one strategy's) with N working orders of one strategy; calls = "
            "broker.counter during activation (its after-commit cancel included); 'all cancelled' = activation "
            "(all cancelled at the broker when it returns) + the one orders_sync() cycle that confirms every "
            "local order as cancelled (in production that cycle starts within ORDER_SYNC_INTERVAL_S).",
        ),
        "admin": Section(
            "admin",
            "Admin order change list vs order count",
            "GET /admin/orders/order/ (the default change list: newest first, 100 rows) through django.test.Client "
            "logged in as a superuser, in-process on PostgreSQL; repeated renders after two warm-ups, each followed "
            "by a render of the control /admin/auth/group/ (reads no orders); ratio of p10s divided by the "
            "control's ratio; SQL statements counted on one render.",
        ),
        "reconcile": Section(
            "reconcile",
            "Reconciliation with many positions",
            "positions_reconcile() (all of it: the syncs and position reads it makes) with N symbols held at the "
            "broker and in the ledger; calls from broker.counter, by operation in the notes; a second run with 3 "
            "of the N disagreeing (a difference is confirmed before it is recorded, so this path reads more).",
        ),
    }


def _guard(section: Section, log: Log, work: Callable[[], None]) -> None:
    started = time.perf_counter()
    try:
        work()
    except Exception as exc:  # noqa: BLE001  (one benchmark failing must not lose the others' figures)
        section.error = f"{type(exc).__name__}: {exc}"
        log(f"{section.key} FAILED: {section.error}")
        log(traceback.format_exc())
    finally:
        section.seconds += time.perf_counter() - started


def run(*, only: list[str], sizes: Any, log: Log, out_dir: Path) -> list[Section]:
    sections = _sections()
    small, large = sizes.history
    history_results: dict[int, dict[str, Any]] = {}
    fixtures.officer()
    check_user, _ = fixtures.api_client("bench-precheck-client")

    def history_stage(size: int) -> None:
        if not ({"precheck", "admin"} & set(only)):
            return
        strat = b_precheck.strategy()
        strat.clients.add(check_user)
        others = [fixtures.fast_strategy(f"bench-hist-{i}").pk for i in range(1, 4)]
        log(f"history: loading up to {size:,} orders and fills")
        load = history.load(size, strategy_ids=[strat.pk, *others], progress=log)
        counts = history.table_counts()
        log(f"history: {counts['orders']:,} orders, {counts['fills']:,} fills in the database")
        stage: dict[str, Any] = {"load": load, "counts": counts}
        history_results[size] = stage
        if "precheck" in only:

            def precheck() -> None:
                fixtures.ensure_equity()
                b_precheck.prepare_book(strat)
                log(f"precheck: {size:,} history, {sizes.check_repeats} checks")
                stage["check"] = b_precheck.measure_check(strat, sizes.check_repeats)
                stage["submit"] = b_precheck.measure_submit(strat, check_user, sizes.submit_repeats)
                if size == small:
                    stage["evaluate"] = b_precheck.evaluate_throughput(strat, sizes.evaluate_seconds)
                b_precheck.cleanup(strat)

            _guard(sections["precheck"], log, precheck)
        if "admin" in only:

            def admin() -> None:
                log(f"admin: {size:,} orders")
                stage["admin"] = b_admin.measure(sizes.admin_repeats)

            _guard(sections["admin"], log, admin)

    history_stage(small)

    venues_needed = [name for name in ("sync", "killswitch", "reconcile") if name in only]
    if venues_needed:
        from tools.bench.venues import FakeAlpacaVenue, SimulatedVenue

        strat = b_jobs.strategy()
        venues: list[Any] = []
        fake = None
        if "alpaca" in sizes.brokers:
            fake = FakeAlpacaVenue(out_dir / "fake-alpaca.log")
            out_dir.mkdir(parents=True, exist_ok=True)
            fake.__enter__()
            venues.append(fake)
        if "simulated" in sizes.brokers:
            venues.append(SimulatedVenue())
        try:
            if "sync" in only:
                _guard(sections["sync"], log, lambda: _sync(sections["sync"], venues, strat, sizes, log))
            if "killswitch" in only:
                _guard(
                    sections["killswitch"], log, lambda: _killswitch(sections["killswitch"], venues, strat, sizes, log)
                )
            if "reconcile" in only:
                _guard(sections["reconcile"], log, lambda: _reconcile(sections["reconcile"], venues, strat, sizes, log))
        finally:
            if fake is not None:
                fake.__exit__(None, None, None)

    if "entry" in only:
        _guard(sections["entry"], log, lambda: _entry(sections["entry"], sizes, log, out_dir))

    history_stage(large)
    if "precheck" in only:
        _precheck_figures(sections["precheck"], history_results, small, large)
    if "admin" in only:
        _admin_figures(sections["admin"], history_results, small, large)
    return [
        sections[name] for name in ("entry", "precheck", "sync", "killswitch", "admin", "reconcile") if name in only
    ]


# --- per benchmark -------------------------------------------------------------


def _entry(section: Section, sizes: Any, log: Log, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    tokens, slugs = b_entry.setup(max(sizes.entry_clients))
    counted = b_entry.statements_per_request(tokens[0], slugs[0])
    section.add(
        "SQL statements per accepted order (whole POST /v1/orders, in-process count)",
        counted["entry"],
        "",
        "<= 16",
        check(counted["entry"], at_most=16) if counted["entry_status"] == 201 else False,
        counted,
    )
    section.add("  SQL statements per baseline insert", counted["baseline"])
    _latency(section, sizes, log, out_dir, tokens, slugs)
    section.notes.append(
        f"gunicorn {sizes.entry_workers} sync workers; {sizes.entry_seconds:g}s measured per endpoint and N "
        f"(after {sizes.entry_warmup:g}s warm-up each); load generator, gunicorn and PostgreSQL share the machine"
    )
    bad_total = 0
    with b_entry.Gunicorn(workers=sizes.entry_workers, log_path=out_dir / "gunicorn.log") as server:
        for clients in sizes.entry_clients:
            log(f"entry: N={clients}")
            result = b_entry.measure(
                server, tokens[:clients], slugs[:clients], seconds=sizes.entry_seconds, warmup=sizes.entry_warmup
            )
            e, b = result["entry"], result["baseline"]
            section.add(
                f"throughput, order entry / baseline, N={clients}",
                result["throughput_ratio"],
                "x",
                ">= 0.30",
                check(result["throughput_ratio"], at_least=0.3),
                result,
            )
            section.add(
                f"p99 latency, order entry / baseline, N={clients}",
                result["p99_ratio"],
                "x",
                "<= 3.00",
                check(result["p99_ratio"], at_most=3.0),
            )
            section.add(
                f"  order entry N={clients}: req/s, p50/p99 ms, backends waiting on a lock",
                f"{e['throughput_per_s']:.0f}/s {e['p50_ms']:.1f}/{e['p99_ms']:.1f} {e['lock_waiting_avg']:.1f}",
            )
            section.add(
                f"  baseline    N={clients}: req/s, p50/p99 ms, backends waiting on a lock",
                f"{b['throughput_per_s']:.0f}/s {b['p50_ms']:.1f}/{b['p99_ms']:.1f} {b['lock_waiting_avg']:.1f}",
            )
            bad = result["entry_not_201"] + result["baseline_not_201"] + result["entry_not_submitted"]
            bad_total += bad
            if bad:
                section.notes.append(
                    f"N={clients}: entry answers {e['statuses']} orders {e['order_statuses']} errors {e['errors']}; "
                    f"baseline answers {b['statuses']} errors {b['errors']}"
                )
    section.add("answers that were not 201 + orders not 'submitted'", bad_total, "", "0", bad_total == 0)


def _latency(section: Section, sizes: Any, log: Log, out_dir: Path, tokens: list[str], slugs: list[str]) -> None:
    """Added latency over a slow broker and the account lock's hold (N clients), then a burst of one strategy."""
    from tools.bench import b_latency

    lock_log = out_dir / b_latency.LOCK_LOG
    broker_ms = sizes.broker_ms
    threads = max(8, -(-max(sizes.burst_size, *sizes.latency_clients) // sizes.entry_workers))
    section.notes.append(
        f"latency, lock hold, burst: a second gunicorn, {sizes.entry_workers} workers x {threads} threads "
        f"(gthread: a request mostly waits on the broker), SIM_SUBMIT_LATENCY_MS={broker_ms}, "
        f"ORDER_ENTRY_LOCK_TIMING=true; {sizes.entry_seconds:g}s per N after {sizes.entry_warmup:g}s warm-up; "
        f"burst: {sizes.burst_repeats} bursts of {sizes.burst_size} after one warm-up burst, pooled"
    )
    with b_latency.server(
        broker_ms=broker_ms, workers=sizes.entry_workers, threads=threads, out_dir=out_dir
    ) as server:
        for clients in sizes.latency_clients:
            log(f"entry: latency over a {broker_ms} ms broker, N={clients}")
            r = b_latency.closed_loop(
                server, tokens[:clients], slugs[:clients], seconds=sizes.entry_seconds, warmup=sizes.entry_warmup,
                broker_ms=broker_ms, lock_log=lock_log,
            )
            targeted = clients >= 8
            section.add(
                f"added latency over a {broker_ms} ms broker, p50, N={clients}",
                r["added_p50_ms"], "ms", "<= 10" if targeted else "",
                check(r["added_p50_ms"], at_most=10) if targeted else None, r,
            )
            section.add(
                f"added latency over a {broker_ms} ms broker, p99, N={clients}",
                r["added_p99_ms"], "ms", "<= 30" if targeted else "",
                check(r["added_p99_ms"], at_most=30) if targeted else None,
            )
            section.add(f"account lock hold, p50, N={clients}", r["lock_hold_p50_ms"], "ms")
            section.add(
                f"account lock hold, p99, N={clients}",
                r["lock_hold_p99_ms"], "ms", "<= 10" if targeted else "",
                check(r["lock_hold_p99_ms"], at_most=10) if targeted else None,
            )
            section.add(
                f"  N={clients}: orders/s; answer p50/p99 ms; lock holds logged",
                f"{r['throughput_per_s']:.0f}/s; {r['answer_p50_ms']:.1f}/{r['answer_p99_ms']:.1f}; "
                f"{r['lock_holds_logged']}",
            )
            if set(r["statuses"]) != {201} or r["errors"] or set(r["order_statuses"]) != {"submitted"}:
                section.notes.append(
                    f"latency N={clients}: answers {r['statuses']} orders {r['order_statuses']} errors {r['errors']}"
                )
        log(f"entry: {sizes.burst_size}-order burst of one strategy, {broker_ms} ms broker")
        b = b_latency.burst(server, tokens[0], slugs[0], size=sizes.burst_size, repeats=sizes.burst_repeats)
        section.add(
            f"burst of {sizes.burst_size} orders from one strategy, {broker_ms} ms broker: p99 answer",
            b["p99_ms"], "ms", "<= 1000", check(b["p99_ms"], at_most=1000), b,
        )
        section.add(
            "  burst: p50 / max ms; answers 201 of sent",
            f"{b['p50_ms']:.0f} / {b['max_ms']:.0f}; {b['answers_ok']} of {b['size'] * b['bursts']}",
        )
        if set(b["statuses"]) != {201} or b["errors"]:
            section.notes.append(f"burst: answers {b['statuses']} orders {b['order_statuses']} errors {b['errors']}")


def _precheck_figures(section: Section, results: dict[int, dict[str, Any]], small: int, large: int) -> None:
    s, big = results.get(small, {}), results.get(large, {})
    if "check" not in s or "check" not in big:
        return
    label = f"{large:,} vs {small:,} historical orders+fills"
    for key, name in (("check", "check (lock+snapshot+evaluate)"), ("submit", "whole order_submit")):
        raw = ratio(big[key]["p10_ms"], s[key]["p10_ms"])
        control = ratio(big[key]["control_p10_ms"], s[key]["control_p10_ms"])
        value = ratio(raw, control)
        section.add(
            f"{name}, {label} (drift-corrected)",
            value,
            "x",
            "<= 1.20",
            check(value, at_most=1.2),
            {"small": s[key], "large": big[key], "raw_ratio": raw, "control_ratio": control},
        )
        section.add(f"  {key}: raw p10 ratio / control ratio", f"{raw:.2f}x / {control:.2f}x")
        section.add(
            f"  {key} ms p10 (median), small / large",
            f"{s[key]['p10_ms']:.2f} ({s[key]['median_ms']:.2f}) / "
            f"{big[key]['p10_ms']:.2f} ({big[key]['median_ms']:.2f})",
        )
        section.add(f"  {key} SQL statements, small / large", f"{s[key]['queries']} / {big[key]['queries']}")
    evaluate = s.get("evaluate")
    if evaluate:
        section.add("evaluate() calls/s in-process, passing order", evaluate["passing_per_s"], "/s", "", None, evaluate)
        section.add(
            f"evaluate() calls/s, denied order ({len(evaluate['denied_codes'])} violations)",
            evaluate["denied_per_s"],
            "/s",
        )
    section.notes.append(
        "drift-corrected = (p10 large / p10 small) / (control p10 large / control p10 small). The control is the "
        "check's 6 statements that read neither orders nor fills, timed in alternating blocks with the measured "
        "work, so a stage during which this shared 2-core machine was slower is divided out; p10 = the least "
        "disturbed runs. Medians in brackets"
    )
    section.notes.append(
        f"database at the two sizes: {s['counts']['orders']:,} / {big['counts']['orders']:,} orders, "
        f"{s['counts']['fills']:,} / {big['counts']['fills']:,} fills; loading the large history took "
        f"{big['load']['insert_s']:.0f}s (+{big['load']['vacuum_s']:.0f}s VACUUM ANALYZE, CHECKPOINT)"
    )
    for name in ("check", "submit"):
        for stage, data in (("small", s), ("large", big)):
            bad = data[name].get("violations") or {
                k: v for k, v in data[name].get("statuses", {}).items() if k != "submitted"
            }
            if bad:
                section.notes.append(f"{name} at {stage} history was not a clean pass: {bad}")


def _admin_figures(section: Section, results: dict[int, dict[str, Any]], small: int, large: int) -> None:
    s, big = results.get(small, {}).get("admin"), results.get(large, {}).get("admin")
    if s is None or big is None:
        return
    if not (s.get("available") and big.get("available")):
        section.add("change list render ratio", None, "", "<= 2.00", None, {"small": s, "large": big})
        section.notes.append(
            f"/admin/orders/order/ answered {s.get('status')} / {big.get('status')}: the Order admin is not "
            "registered yet (orders/admin.py), so nothing was measured"
        )
        return
    raw = ratio(big["p10_ms"], s["p10_ms"])
    control = ratio(big["control_p10_ms"], s["control_p10_ms"])
    render_ratio = ratio(raw, control)
    section.add(
        f"change list render, {large:,} vs {small:,} orders (drift-corrected)",
        render_ratio,
        "x",
        "<= 2.00",
        check(render_ratio, at_most=2.0),
        {"small": s, "large": big, "raw_ratio": raw, "control_ratio": control},
    )
    section.add("  raw p10 ratio / control ratio (/admin/auth/group/)", f"{raw:.2f}x / {control:.2f}x")
    section.add(
        "  render ms p10 (median), small / large",
        f"{s['p10_ms']:.1f} ({s['median_ms']:.1f}) / {big['p10_ms']:.1f} ({big['median_ms']:.1f})",
    )
    section.add("  queries per render, small / large", f"{s['queries']} / {big['queries']}", "", None)
    slow = big.get("slowest_queries") or []
    if slow:
        section.notes.append(
            "slowest queries at the large size: " + "; ".join(f"{q['ms']:.1f} ms {q['sql'][:160]}" for q in slow)
        )


def _sync(section: Section, venues: list[Any], strat: Any, sizes: Any, log: Log) -> None:
    counts = sorted(set(sizes.sync_orders) | set(sizes.sync_memory))
    small, large = sizes.sync_memory
    for venue in venues:
        with venue.broker() as broker:
            results = {}
            for count in counts:
                log(f"sync: {venue.name}, {count:,} open orders")
                results[count] = b_jobs.sync_cycle(venue, broker, strat, count)
            for count in sizes.sync_orders:
                r = results[count]
                section.add(
                    f"{venue.name}: broker calls per cycle, {count:,} open",
                    r["calls"],
                    "",
                    f"<= {r['budget']}",
                    check(r["calls"], at_most=r["budget"]) if r["ok"] else False,
                    r,
                )
            memory_ratio = ratio(results[large]["peak_bytes"], results[small]["peak_bytes"])
            section.add(
                f"{venue.name}: cycle peak memory, {large:,} vs {small:,} open",
                memory_ratio,
                "x",
                "<= 1.50",
                check(memory_ratio, at_most=1.5),
            )
            full_page = [c for c in counts if c >= 2 * b_jobs.PAGE and c < large]
            if full_page:
                paged = ratio(results[large]["peak_bytes"], results[full_page[0]]["peak_bytes"])
                section.add(
                    f"  {venue.name}: peak memory, {large:,} vs {full_page[0]:,} open (both >= 2 pages)", paged, "x"
                )
            section.add(
                f"  {venue.name}: peak MiB, " + " / ".join(f"{c:,}" for c in counts),
                " / ".join(f"{results[c]['peak_bytes'] / 2**20:.2f}" for c in counts),
            )
            interval_ms = settings.ORDER_SYNC_INTERVAL_S * 1000
            for count in sizes.sync_orders:
                if count < 1000:
                    continue
                r = results[count]
                section.add(
                    f"{venue.name}: sync cycle time, {count:,} open (5 fills, first sighting of each)",
                    r["cycle_ms"],
                    "ms",
                    f"<= {interval_ms:,} (ORDER_SYNC_INTERVAL_S)",
                    check(r["cycle_ms"], at_most=interval_ms),
                )
            section.add(
                f"  {venue.name}: cycle ms, first / steady, " + " / ".join(f"{c:,}" for c in counts),
                " / ".join(f"{results[c]['cycle_ms']:.0f}/{results[c]['steady_cycle_ms']:.0f}" for c in counts),
            )
            if sizes.sync_closed:
                log(f"sync: {venue.name}, 10 open orders (one a day old), {sizes.sync_closed:,} closed since")
                h = b_jobs.sync_with_closed_history(venue, broker, strat, 10, sizes.sync_closed)
                section.add(
                    f"{venue.name}: calls per cycle, 10 open (one a day old) + {sizes.sync_closed:,} closed since",
                    h["calls"],
                    "",
                    f"<= {h['budget']}",
                    check(h["calls"], at_most=h["budget"]),
                    h,
                )
                section.notes.append(
                    f"{venue.name}, 10 open + {sizes.sync_closed:,} closed since: {h['operations']}, "
                    f"{h['cycle_ms']:.0f} ms"
                )
            for count, r in results.items():
                if not r["ok"]:
                    section.notes.append(
                        f"{venue.name} {count:,}: cycle checked {r['checked']} orders, {r['fills']} fills"
                    )
            section.notes.append(
                f"{venue.name} calls by operation: " + "; ".join(f"{c:,}: {results[c]['operations']}" for c in counts)
            )


def _killswitch(section: Section, venues: list[Any], strat: Any, sizes: Any, log: Log) -> None:
    n = sizes.killswitch_orders
    for index, venue in enumerate(venues):
        with venue.broker() as broker:
            log(f"killswitch: {venue.name}, {n:,} working orders, global")
            g = b_jobs.kill_switch(venue, broker, strat, n, scope="global")
            converged = g["open_at_broker_after_activation"] == 0 and g["still_working_after_sync"] == 0
            section.add(
                f"{venue.name}: broker calls by global activation, {n:,} working",
                g["calls"],
                "",
                "<= 2",
                check(g["calls"], at_most=2),
                g,
            )
            section.add(
                f"{venue.name}: time to all cancelled (activation + 1 sync)", g["all_cancelled_ms"], "ms", "", None
            )
            section.add(
                f"  {venue.name}: cancel-all sent after / activation / sync ms; sync calls",
                f"{g['first_cancel_sent_ms'] or float('nan'):.0f} / {g['activation_ms']:.0f} / "
                f"{g['sync_ms']:.0f}; {g['sync_calls']}",
            )
            if not converged:
                section.notes.append(
                    f"{venue.name}: {g['open_at_broker_after_activation']} still open at the broker after activation, "
                    f"{g['still_working_after_sync']} still working locally after one sync"
                )
            if index:
                continue  # the strategy scope once is enough: it is one cancel per order by design
            log(f"killswitch: {venue.name}, {n:,} working orders, one strategy")
            s = b_jobs.kill_switch(venue, broker, strat, n, scope="strategy")
            section.add(
                f"  {venue.name}: calls by one strategy's activation, {n:,} working", s["calls"], "", "", None, s
            )
            section.add(f"  {venue.name}: strategy scope, time to all cancelled", s["all_cancelled_ms"], "ms")
    section.notes.append(
        "a strategy's kill switch cancels order by order (SPEC 4.4: the broker has no per-strategy cancel), "
        "so its calls grow with the strategy's working orders; the <= 2 target is the global activation's"
    )


def _reconcile(section: Section, venues: list[Any], strat: Any, sizes: Any, log: Log) -> None:
    n = sizes.positions
    for venue in venues:
        with venue.broker() as broker:
            log(f"reconcile: {venue.name}, {n:,} positions")
            clean = b_jobs.reconcile(venue, broker, strat, n, breaks=0)
            broken = b_jobs.reconcile(venue, broker, strat, n, breaks=3)
            section.add(f"{venue.name}: broker calls, {n:,} positions, no break", clean["calls"], "", "", None, clean)
            section.add(f"{venue.name}: time, {n:,} positions, no break", clean["ms"], "ms")
            section.add(
                f"  {venue.name}: calls / ms with 3 breaks",
                f"{broken['calls']} / {broken['ms']:.0f}",
                "",
                "",
                None,
                broken,
            )
            if clean["breaks_found"] or broken["breaks_found"] != 3 or clean["positions_checked"] < n:
                section.notes.append(
                    f"{venue.name}: expected 0 and 3 breaks over {n} positions, found {clean['breaks_found']} and "
                    f"{broken['breaks_found']} ({clean['positions_checked']} checked)"
                )
            section.notes.append(
                f"{venue.name} calls by operation: clean {clean['operations']}; with breaks {broken['operations']}"
            )
