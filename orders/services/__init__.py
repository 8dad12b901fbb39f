"""Every state change of an order, one module per concern (STYLE 11, like Zulip's ``zerver/actions/``).

- ``entry``: submit and send (the pre-trade pipeline, the kill-switch fence);
- ``execution``: broker updates, fills, the position ledger;
- ``amend``: an amend (the broker's replace) of a working order, checked first;
- ``cancel``: a client's cancel and each attempt to get it to the broker,
  settling ambiguous sends;
- ``intent``: the kill switch's cancels and flatten, and each sync cycle's
  push of every stored intent to the broker (adr/0011);
- ``sync``: status polling;
- ``reconciliation``: broker positions vs the ledger, and break handling;
- ``adjustments``: ledger adjustments that resolve a break (four-eyes);
- ``transitions``: the one way an order changes state, with its audit row.

Each function owns its transaction and writes the OrderTransition row of every
state change inside it. Broker calls happen outside the transaction that
stored the order, with one deliberate exception, ``order_send``. Callers import
from ``orders.services``; the names below are its public face.
"""

from orders.services.adjustments import (
    AdjustmentRefused,
    ledger_adjustment_approve,
    ledger_adjustment_reject,
    ledger_adjustment_request,
)
from orders.services.amend import AmendRequest, OrderNotAmendable, order_amend
from orders.services.cancel import OrderNotCancellable, order_cancel, order_cancel_attempt, order_resolve
from orders.services.entry import (
    BrokerUnreachable,
    IdempotencyConflict,
    InvalidOrder,
    LookupBudgetSpent,
    OrderRequest,
    SubmitOutcome,
    order_send,
    order_submit,
)
from orders.services.execution import order_apply_broker_update
from orders.services.intent import DriveResult, intents_drive, orders_cancel_for_kill_switch, positions_flatten
from orders.services.reconciliation import ReconcileResult, break_handle, positions_reconcile
from orders.services.sync import CLOSED_LISTING_WINDOW, SyncResult, orders_sync

__all__ = [
    "CLOSED_LISTING_WINDOW",
    "AdjustmentRefused",
    "AmendRequest",
    "BrokerUnreachable",
    "DriveResult",
    "IdempotencyConflict",
    "InvalidOrder",
    "LookupBudgetSpent",
    "OrderNotAmendable",
    "OrderNotCancellable",
    "OrderRequest",
    "ReconcileResult",
    "SubmitOutcome",
    "SyncResult",
    "break_handle",
    "intents_drive",
    "ledger_adjustment_approve",
    "ledger_adjustment_reject",
    "ledger_adjustment_request",
    "order_amend",
    "order_apply_broker_update",
    "order_cancel",
    "order_cancel_attempt",
    "order_resolve",
    "order_send",
    "order_submit",
    "orders_cancel_for_kill_switch",
    "orders_sync",
    "positions_flatten",
    "positions_reconcile",
]
