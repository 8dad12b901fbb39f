"""Status polling: move every local working order to the broker's state, in pages."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from brokers import types as bt
from brokers.exceptions import BrokerError
from brokers.registry import get_broker
from orders.models import Order
from orders.services.cancel import order_resolve
from orders.services.execution import _apply_broker_order, broker_order_changes, order_apply_broker_update
from orders.services.intent import DriveResult, OpenBrokerOrder, intents_drive, open_broker_orders
from orders.services.transitions import S
from orders.states import WORKING
from risk.models import KillSwitch

logger = logging.getLogger(__name__)
CLOSED_LISTING_WINDOW = dt.timedelta(minutes=15)


@dataclass
class SyncResult:
    checked: int = 0
    changed: int = 0
    resolved: int = 0
    fills: int = 0
    broker_calls: int = 0
    # Open broker orders no local order has, when the caller asked (reconciliation reports them).
    unknown_open: list[dict[str, str]] = field(default_factory=list)
    # What the cycle pushed to the broker after pulling its state in (adr/0011).
    drive: DriveResult | None = None


def _pages(broker_orders: Iterable[bt.BrokerOrder], size: int = 500) -> Iterable[list[bt.BrokerOrder]]:
    page: list[bt.BrokerOrder] = []
    for broker_order in broker_orders:
        page.append(broker_order)
        if len(page) == size:
            yield page
            page = []
    if page:
        yield page


def _with_legs(page: list[bt.BrokerOrder]) -> list[bt.BrokerOrder]:
    """A nested listing's page with every entry's legs as orders of their own (each is one of ours).

    Once each: a broker that also lists legs on their own (the simulated one) names them twice.
    """
    return list({bo.client_order_id: bo for bo in page + [leg for bo in page for leg in bo.legs]}.values())


def _apply_page(page: list[bt.BrokerOrder], *, cycle_start: dt.datetime, label: str, result: SyncResult) -> None:
    """Apply one page of broker orders (legs included) to the local orders they name, one short transaction each.

    Only the orders the broker's report changes are locked and written: a row
    lock is a write (its COMMIT flushes WAL), and in a steady book almost every
    listed order is unchanged. What the page's one read shows may be stale by
    the time an order is locked; the locked order is checked again. An entry
    whose legs are not recorded yet counts as changed (its legs are new).
    """
    by_client_id = {bo.client_order_id: bo for bo in page}
    leg_ids = [leg.client_order_id for bo in page for leg in bo.legs]
    recorded = set(Order.objects.filter(client_order_id__in=leg_ids).values_list("client_order_id", flat=True))
    # An entry whose legs are not ours yet (its send's answer was lost) is applied even if it has closed here:
    # that records its legs (execution._record_legs).
    unrecorded = {bo.client_order_id for bo in page if any(leg.client_order_id not in recorded for leg in bo.legs)}
    # Working orders, and orders closed as never received: the broker showing
    # one of those is late truth, adopted (execution._adopt_late_truth).
    local = Order.objects.filter(client_order_id__in=by_client_id).filter(
        Q(status__in=WORKING) | Q(never_received_at__isnull=False) | Q(client_order_id__in=unrecorded)
    ).exclude(status=S.PENDING)
    rows = local.values_list("id", "client_order_id", "status", "filled_qty", "broker_order_id", "never_received_at")
    for order_id, client_order_id, status, filled_qty, broker_order_id, never_received_at in rows:
        broker_order = by_client_id[client_order_id]
        if client_order_id not in unrecorded and not broker_order_changes(
            status=status, filled_qty=filled_qty, broker_order_id=broker_order_id,
            never_received=never_received_at is not None, broker_order=broker_order,
        ):
            continue
        with transaction.atomic():
            # skip_locked: an order being sent or cancelled right now is left to its owner.
            order = Order.objects.select_for_update(skip_locked=True).filter(pk=order_id).first()
            if order is None or order.status == S.PENDING:
                continue
            if order.status not in WORKING and order.never_received_at is None and client_order_id not in unrecorded:
                continue
            filled_before = order.filled_qty
            if _apply_broker_order(order, broker_order, label=label):
                result.changed += 1
                result.fills += int(order.filled_qty > filled_before)
    # Only ever forward: reconciliation runs a sync of its own, so two cycles
    # can overlap, and the older one's stamp landing last must not make the
    # newer one think these orders were in none of its listings.
    Order.objects.filter(client_order_id__in=by_client_id).filter(
        Q(last_seen_at__isnull=True) | Q(last_seen_at__lt=cycle_start)
    ).update(last_seen_at=cycle_start)


def _collect_unknown(page: list[bt.BrokerOrder], result: SyncResult) -> None:
    """Open broker orders no local order has (placed on the broker's dashboard, or by another system)."""
    ours = set(
        Order.objects.filter(client_order_id__in=[bo.client_order_id for bo in page]).values_list(
            "client_order_id", flat=True
        )
    )
    result.unknown_open += [
        {"client_order_id": bo.client_order_id, "symbol": bo.symbol, "broker_order_id": bo.broker_order_id}
        for bo in page
        if bo.client_order_id not in ours
    ]


def orders_sync(*, label: str = "job:order_sync", report_unknown_open: bool = False, drive: bool = True) -> SyncResult:
    """Move every local working order to the broker's state, then push the broker toward our intent.

    Broker calls grow with pages of 500, not with orders: one paged listing
    of orders closed since the oldest working order was created, and one of
    open orders. Each page is applied as it arrives (memory stays one page
    whatever the size of the book), and every local order a listing named is
    stamped ``last_seen_at``. Only the working orders no listing named are
    looked up one by one: ambiguous sends past their grace period (by
    client_order_id), and orders sent well before the cycle that neither
    listing named (one older than CLOSED_LISTING_WINDOW that has closed).

    With ``report_unknown_open`` the open listing also collects the open
    broker orders this system does not know (reconciliation reports them),
    and is read even when nothing local is working.

    Orders closed as never received stay watched while the closed listing
    can reach them (CLOSED_LISTING_WINDOW): any listing that shows one, like
    reconciliation's open listing at any age, has its late truth adopted.

    Then, with ``drive`` (the beat job's cycle), ``intents_drive`` pushes
    what was decided and is not yet true at the broker: pending cancels,
    active kill switches, flatten (adr/0011). The open listing is then read
    while a global switch is active even with nothing local working, since
    an order we do not know is in its scope too. Reconciliation syncs without
    the drive, so that its two position reads are not moved by it.
    """
    broker = get_broker()
    calls_before = broker.counter.calls
    result = SyncResult()
    grace = dt.timedelta(seconds=settings.UNKNOWN_ORDER_GRACE_S)
    cycle_start = timezone.now()
    local = Order.objects.filter(status__in=WORKING)
    result.checked = local.count()  # the working set, through its partial index
    switches = set(KillSwitch.objects.filter(active=True).values_list("strategy_id", flat=True)) if drive else set()
    watched = Order.objects.filter(
        never_received_at__isnull=False, created_at__gte=cycle_start - CLOSED_LISTING_WINDOW
    )
    if not result.checked and not report_unknown_open and not switches and not watched.exists():
        return result
    oldest = min(
        (
            created_at
            for created_at in (
                local.exclude(status=S.PENDING).order_by("created_at").values_list("created_at", flat=True).first(),
                watched.order_by("created_at").values_list("created_at", flat=True).first(),
            )
            if created_at is not None
        ),
        default=None,
    )
    open_orders: list[OpenBrokerOrder] = []
    if oldest is not None or report_unknown_open or None in switches:
        for page in map(_with_legs, _pages(broker.iter_orders(status="open"))):
            open_orders += open_broker_orders(page)
            if report_unknown_open:
                _collect_unknown(page, result)
            # Applied even when nothing local is working: an order closed as
            # never received may be on this page (late truth).
            _apply_page(page, cycle_start=cycle_start, label=label, result=result)
    if oldest is not None:
        # The closed listing reaches back to the oldest working order, but no
        # further than CLOSED_LISTING_WINDOW: one day-old GTC order must not make
        # every cycle page through the day's history. An older order that
        # closed is in neither listing and is looked up by id below.
        closed_since = max(oldest - dt.timedelta(minutes=1), cycle_start - CLOSED_LISTING_WINDOW)
        for page in map(_with_legs, _pages(broker.iter_orders(status="closed", after=closed_since))):
            _apply_page(page, cycle_start=cycle_start, label=label, result=result)

    # An order sent while the listings were being read may be in neither; the
    # next cycle lists it. Only orders sent well before this cycle are looked up.
    settled = cycle_start - dt.timedelta(seconds=float(settings.ALPACA_TIMEOUT_S))
    unseen = local.filter(Q(last_seen_at__isnull=True) | Q(last_seen_at__lt=cycle_start))
    for order_id, status, created_at, sent_at, broker_order_id, client_order_id in unseen.values_list(
        "id", "status", "created_at", "sent_at", "broker_order_id", "client_order_id"
    ).iterator(chunk_size=500):
        ambiguous = status in {S.UNKNOWN, S.PENDING} or (status == S.PENDING_CANCEL and not broker_order_id)
        if ambiguous:
            if cycle_start - created_at >= grace:
                order_resolve(order_id=order_id, label=label)
                result.resolved += 1
        elif broker_order_id and (sent_at or created_at) < settled:
            try:
                logger.debug("sync lookup %s status=%s sent %.2fs before cycle", client_order_id, status,
                            (cycle_start - (sent_at or created_at)).total_seconds())
                order_apply_broker_update(broker_order=broker.get_order(broker_order_id), label=label)
                result.changed += 1
            except BrokerError as exc:
                logger.warning("order %s is in no listing and its lookup failed: %s", client_order_id, exc)
    if drive:
        result.drive = intents_drive(open_orders=open_orders, label=label)
    result.broker_calls = broker.counter.calls - calls_before
    return result
