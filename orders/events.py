"""The clients' order event feed (GET /v1/events): written with each change, read past a safe watermark.

Why not simply "events with id > cursor": an id is taken when the row is
INSERTed, but becomes visible when its transaction COMMITs. Two concurrent
transactions can commit in the other order, so a reader could serve id 11,
store the cursor 11, and never see id 10 committing a moment later.

On PostgreSQL each event carries its transaction id (``pg_current_xact_id``)
and the feed is ordered by (txid, id). A reader first takes the oldest
transaction id still running (the xmin of its snapshot); every transaction
below it has finished, so the events below it are final: none can appear
later. Only those are served, and anything that commits afterwards has a
txid at or above that watermark, so it sorts after every cursor handed out.
No settle window to tune, nothing missed, nothing repeated. The cost: an
event waits until transactions that started before its own have finished
(order_send holds one across the broker call, bounded by ALPACA_TIMEOUT_S).

On SQLite one writer at a time holds the database, so id order is commit
order and the watermark is simply everything committed.
"""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Callable
from dataclasses import dataclass

from django.db import connection
from django.db.models import Q, QuerySet
from django.db.models.expressions import RawSQL

from orders.models import Fill, Order, OrderEvent, OrderTransition

CURSOR_PREFIX = "e1"


class InvalidCursor(ValueError):
    """A cursor this feed did not hand out."""


BIGINT_END = 2**63  # transaction ids and event ids are PostgreSQL bigints


@dataclass(frozen=True)
class Cursor:
    txid: int
    id: int

    def encode(self) -> str:
        return base64.urlsafe_b64encode(f"{CURSOR_PREFIX}:{self.txid}:{self.id}".encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> Cursor:
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
            prefix, txid, event_id = raw.split(":")
            if prefix != CURSOR_PREFIX:
                raise ValueError(prefix)
            cursor = cls(int(txid), int(event_id))
        except (ValueError, binascii.Error, UnicodeDecodeError):
            raise InvalidCursor("Invalid cursor: use the next cursor of a previous answer.") from None
        if not (0 <= cursor.txid < BIGINT_END and 0 <= cursor.id < BIGINT_END):  # a forged 10**30 is not a 500
            raise InvalidCursor("Invalid cursor: use the next cursor of a previous answer.")
        return cursor


START = Cursor(0, 0)


def _current_txid() -> RawSQL | int:
    if connection.vendor == "postgresql":
        # xid8 (epoch-extended, never wraps) as a bigint.
        return RawSQL("pg_current_xact_id()::text::bigint", [])
    return 0


def event_record(*, order: Order, transition: OrderTransition | None = None, fill: Fill | None = None) -> None:
    """Append the feed entry of one change; called inside the transaction that made it."""
    OrderEvent.objects.create(
        order=order,
        strategy_id=order.strategy_id,
        transition=transition,
        fill=fill,
        txid=_current_txid(),
        at=transition.at if transition is not None else fill.at if fill is not None else order.updated_at,
    )


def _watermark() -> tuple[int, int | None] | None:
    """The oldest transaction id still running (every event below it is final), and the reader's own, if any.

    A transaction's own events are final to itself (it sees its writes); that
    only matters where one transaction writes and then reads the feed, as a
    test inside its transaction does. None: no watermark needed (SQLite).
    """
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint, "
            "pg_current_xact_id_if_assigned()::text::bigint"
        )
        xmin, own = cursor.fetchone()
        return int(xmin), (int(own) if own is not None else None)


def events_after(
    events: QuerySet[OrderEvent], *, cursor: Cursor, limit: int, wait_s: float = 0,
    sleep: Callable[[float], None] = time.sleep, poll_s: float = 0.25,
) -> tuple[list[OrderEvent], Cursor]:
    """The next ``limit`` final events after ``cursor`` (waiting up to ``wait_s`` for one), and the next cursor."""
    deadline = time.monotonic() + max(0.0, wait_s)
    while True:
        # The watermark is read in a statement before the events' one: whatever
        # finished before it is visible to the later statement too.
        watermark = _watermark()
        page = events.filter(Q(txid__gt=cursor.txid) | Q(txid=cursor.txid, id__gt=cursor.id))
        if watermark is not None:
            xmin, own = watermark
            page = page.filter(Q(txid__lt=xmin) | Q(txid=own)) if own is not None else page.filter(txid__lt=xmin)
        found = list(
            page.select_related("order", "strategy", "transition", "fill").order_by("txid", "id")[:limit]
        )
        if found or time.monotonic() >= deadline:
            break
        sleep(min(poll_s, max(0.0, deadline - time.monotonic())))
    if not found:
        return [], cursor
    last = found[-1]
    return found, Cursor(last.txid, last.id)
