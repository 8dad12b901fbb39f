"""Orders in the admin: read-only lists built for a million rows, cancels and break handling through services.

Nobody adds, edits or deletes an order, a fill or a position by hand. The
order list pages without counting the table (``NoCountPaginator``), filters
on indexed columns only (status, strategy, symbol, created_at: the
``order_*_newest`` indexes), sorts only in index order, searches ids by
exact match (their unique indexes), and reads each page with one query
(``list_select_related``).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin import DateFieldListFilter, helpers
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import PermissionDenied
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from backoffice.admin_exports import CsvExportMixin
from backoffice.admin_tools import (
    BackofficeModelAdmin,
    InputFilter,
    LargeTableAdminMixin,
    ObjectAction,
    ReadOnlyAdminMixin,
    ReasonForm,
    badge,
    has_perm,
    quantity,
    timestamp,
    timestamp_column,
)
from backoffice.formatting import money, percent, signed_money
from orders import services, valuation
from orders.models import (
    AdjustmentStatus,
    Fill,
    LedgerAdjustment,
    Order,
    OrderTransition,
    Position,
)
from orders.states import WORKING, OrderStatus
from risk.models import RiskLimits

S = OrderStatus
CANCEL_PERMISSION = "orders.cancel_any_order"
# A bulk cancel beyond this is a job for the kill switch, not for a list action.
MAX_BULK_CANCEL = 500
STATUS_LEVEL = {
    S.FILLED: "ok", S.PARTIALLY_FILLED: "info", S.SUBMITTED: "info", S.PENDING: "info",
    S.PENDING_CANCEL: "warn", S.UNKNOWN: "breach", S.DENIED: "muted", S.REJECTED: "warn",
    S.CANCELLED: "muted", S.EXPIRED: "muted",
}


def order_status_badge(order: Order) -> str:
    return badge(order.get_status_display(), STATUS_LEVEL.get(order.status, "info"))


def require_cancel_permission(request: HttpRequest) -> None:
    # order_cancel also lets a client cancel orders of a strategy granted to it; the admin is the
    # officers' room, so here only holders of orders.cancel_any_order may (checked before the service).
    if not (request.user.is_active and request.user.has_perm(CANCEL_PERMISSION)):
        raise PermissionDenied(f"missing permission {CANCEL_PERMISSION}")


def cancel_order(request: HttpRequest, order: Order, reason: str) -> str:
    require_cancel_permission(request)
    order = services.order_cancel(acting_user=request.user, order=order, reason=reason)
    return f"Cancel requested for {order.client_order_id}: it is {order.get_status_display().lower()}."


class SymbolFilter(InputFilter):
    title = "symbol"
    parameter_name = "symbol"

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = (self.value() or "").strip().upper()
        return queryset.filter(symbol=value) if value else queryset


class ReadOnlyInline(ReadOnlyAdminMixin, admin.TabularInline):  # type: ignore[type-arg]
    classes = ["bo-readonly-inline"]
    extra = 0
    max_num = 0
    can_delete = False
    show_change_link = False


class TransitionInline(ReadOnlyInline):
    model = OrderTransition
    verbose_name_plural = "transition history (oldest first)"
    fields = [timestamp_column("at", "at (UTC)"), "from_display", "to_display", "who", "reason"]
    readonly_fields = fields
    ordering = ["at", "id"]

    @admin.display(description="from")
    def from_display(self, transition: OrderTransition) -> str:
        return OrderStatus(transition.from_status).label if transition.from_status else "(created)"

    @admin.display(description="to")
    def to_display(self, transition: OrderTransition) -> str:
        return OrderStatus(transition.to_status).label

    @admin.display(description="who")
    def who(self, transition: OrderTransition) -> str:
        return transition.actor_label


class FillInline(ReadOnlyInline):
    model = Fill
    fields = [timestamp_column("at", "at (UTC)"), "side", "quantity", "price_display", "cumulative", "realised"]
    readonly_fields = fields
    ordering = ["at", "id"]

    @admin.display(description="qty")
    def quantity(self, fill: Fill) -> str:
        return quantity(fill.qty)

    @admin.display(description="price")
    def price_display(self, fill: Fill) -> str:
        return money(fill.price)

    @admin.display(description="filled so far")
    def cumulative(self, fill: Fill) -> str:
        return quantity(fill.cumulative_qty)

    @admin.display(description="realised P&L")
    def realised(self, fill: Fill) -> str:
        return signed_money(fill.realized_pnl) if fill.realized_pnl else "—"


@admin.register(Order)
class OrderAdmin(CsvExportMixin, LargeTableAdminMixin, ReadOnlyAdminMixin, BackofficeModelAdmin):
    # Side, quantity and symbol read as one phrase ("Buy 10 AAPL"), type and limit as another
    # ("Limit 95"): two columns instead of five keep Status to Broker id on a 1440 px screen.
    list_display = ["created", "client_order_id", "strategy", "order_line", "order_type", "status_badge", "filled",
                    "average_fill", "broker_order_id"]
    list_select_related = ["strategy"]
    list_filter = ["status", "strategy", SymbolFilter, ("created_at", DateFieldListFilter)]
    search_fields = ["client_order_id", "broker_order_id"]
    search_help_text = "An exact client_order_id or broker_order_id."
    # Sorting by another column would sort the whole table; the index order is newest first.
    sortable_by = ()
    actions = ["cancel_orders"]
    inlines = [TransitionInline, FillInline]
    object_actions = (
        ObjectAction(
            name="cancel",
            label="Cancel order",
            run=cancel_order,
            allowed=has_perm(CANCEL_PERMISSION),
            # pending_cancel too: asking again sends the cancel again now (adr/0011).
            available=lambda user, o: o.status in WORKING,
            style="danger",
            explanation="Moves the order to pending cancel and asks the broker to cancel it; "
                        "a fill that arrives first still counts. On an order already pending cancel, "
                        "sends the cancel to the broker again now. Either way the status sync keeps "
                        "sending it until the broker confirms.",
            submit_label="Request cancel",
        ),
    )
    fieldsets = [
        ("Order", {"fields": ["client_order_id", "strategy", "symbol", "side", "qty", "type", "limit_price",
                              "stop_price", "time_in_force", "stop_loss", "take_profit", "extended_hours", "origin",
                              "submitted_by", "parent", "replaces"]}),
        ("State", {"fields": ["status_badge", "filled_qty", "filled_avg_price", "broker_order_id", "reject_reason",
                              "violation_list"]}),
        ("Cancel (driven by the status sync until the broker confirms)", {"fields": [
            timestamp_column("cancel_requested_at", "cancel requested"), "cancel_attempts",
            timestamp_column("cancel_last_attempt_at", "last attempt"),
            timestamp_column("cancel_next_attempt_at", "next attempt"), "cancel_last_error"]}),
        ("Times (UTC)", {"fields": [timestamp_column("created_at", "created"), timestamp_column("sent_at", "sent"),
                                    timestamp_column("broker_updated_at", "broker update"),
                                    timestamp_column("updated_at", "updated"),
                                    # Set while the broker's late truth may still correct the order (adr/0010).
                                    timestamp_column("never_received_at", "closed as never received")]}),
    ]
    readonly_fields = [f for _, opts in fieldsets for f in opts["fields"]]
    csv_name = "orders"
    csv_columns = [
        ("created_at", lambda o: o.created_at), ("id", lambda o: o.pk),
        ("client_order_id", lambda o: o.client_order_id),
        ("strategy", lambda o: o.strategy.slug), ("symbol", lambda o: o.symbol), ("side", lambda o: o.side),
        ("qty", lambda o: o.qty), ("type", lambda o: o.type), ("limit_price", lambda o: o.limit_price),
        ("stop_price", lambda o: o.stop_price), ("time_in_force", lambda o: o.time_in_force),
        ("status", lambda o: o.status),
        ("filled_qty", lambda o: o.filled_qty), ("filled_avg_price", lambda o: o.filled_avg_price),
        ("broker_order_id", lambda o: o.broker_order_id), ("reject_reason", lambda o: o.reject_reason),
        ("violations", lambda o: ",".join(v.get("code", "") for v in o.violations or [])),
    ]

    @admin.display(description="created (UTC)")
    def created(self, order: Order) -> str:
        return timestamp(order.created_at)

    @admin.display(description="order")
    def order_line(self, order: Order) -> str:
        return f"{order.get_side_display()} {quantity(order.qty)} {order.symbol}"

    @admin.display(description="type")
    def order_type(self, order: Order) -> str:
        # "Stop limit stop 95 limit 94.5": every price the order names, in the broker's words.
        prices = [f"{name} {quantity(price)}" for name, price in (("stop", order.stop_price),
                                                                  ("limit", order.limit_price)) if price is not None]
        if order.type == "limit":
            return f"{order.get_type_display()} {quantity(order.limit_price)}"
        return " ".join([order.get_type_display(), *prices])

    @admin.display(description="filled")
    def filled(self, order: Order) -> str:
        return quantity(order.filled_qty)

    @admin.display(description="avg fill")
    def average_fill(self, order: Order) -> str:
        return quantity(order.filled_avg_price)

    @admin.display(description="status")
    def status_badge(self, order: Order) -> str:
        return order_status_badge(order)

    def broker_order_id(self, order: Order) -> str:
        # Cut to its start by the stylesheet on narrow screens; the whole id is the tooltip.
        # (The column keeps the field's name and header: it is the field, shown shorter.)
        if not order.broker_order_id:
            return "—"
        return format_html('<span class="bo-id" title="{}">{}</span>', order.broker_order_id, order.broker_order_id)

    @admin.display(description="risk violations")
    def violation_list(self, order: Order) -> str:
        if not order.violations:
            return "—"
        return format_html_join(
            "", "<div><code>{}</code> {} (limit {}, actual {})</div>",
            ((v.get("code"), v.get("message"), v.get("limit"), v.get("actual")) for v in order.violations),
        )

    def has_cancel_permission(self, request: HttpRequest) -> bool:
        return request.user.is_active and request.user.has_perm(CANCEL_PERMISSION)

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Order], search_term: str
    ) -> tuple[QuerySet[Order], bool]:
        # Exact match, so the unique indexes answer; admin's "=" search would
        # compare UPPER(...) and scan the table.
        term = search_term.strip()
        if not term:
            return queryset, False
        return queryset.filter(Q(client_order_id=term) | Q(broker_order_id=term)), False

    @admin.action(description="Cancel selected working orders…", permissions=["cancel"])
    def cancel_orders(self, request: HttpRequest, queryset: QuerySet[Order]) -> HttpResponse | None:
        require_cancel_permission(request)
        # pending_cancel orders included: asking again sends their cancel again (adr/0011).
        working = list(queryset.filter(status__in=WORKING)
                       .select_related("strategy").order_by("-created_at")[: MAX_BULK_CANCEL + 1])
        if len(working) > MAX_BULK_CANCEL:
            self.message_user(request, f"More than {MAX_BULK_CANCEL} working orders selected: "
                              "use a kill switch to stop a strategy or everything.", messages.ERROR)
            return None
        if not working:
            self.message_user(request, "None of the selected orders is working: nothing to cancel.", messages.WARNING)
            return None
        form = ReasonForm(request.POST if request.POST.get("confirm") == "yes" else None)
        if form.is_bound and form.is_valid():
            done, refused = 0, []
            for order in working:
                try:
                    services.order_cancel(acting_user=request.user, order=order, reason=form.cleaned_data["reason"])
                    done += 1
                except services.OrderNotCancellable:
                    refused.append(order.client_order_id)
            note = f" {len(refused)} had already finished: {', '.join(refused)}." if refused else ""
            self.message_user(request, f"Cancel requested for {done} order(s).{note}", messages.SUCCESS)
            return None
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"Cancel {len(working)} working order(s)",
            "orders": working,
            "form": form,
            "selected": request.POST.getlist(helpers.ACTION_CHECKBOX_NAME),
            "select_across": request.POST.get("select_across", "0"),
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "admin/orders/order/cancel_orders.html", context)


@admin.register(Fill)
class FillAdmin(CsvExportMixin, LargeTableAdminMixin, ReadOnlyAdminMixin, BackofficeModelAdmin):
    """The fills blotter: every execution, newest first, as a trader reads it ("Buy 10 AAPL @ $101.25")."""

    list_display = [timestamp_column("at", "at (UTC)"), "strategy", "execution", "price_display", "value",
                    "realised", "order_link"]
    list_select_related = ["order", "strategy"]
    list_filter = ["strategy", SymbolFilter, ("at", DateFieldListFilter)]
    sortable_by = ()
    actions = None
    # Newest first by primary key (fills are inserted as they happen): Fill has no index on
    # ``at`` alone, and an order by it would sort the whole table for every page.
    ordering = ["-id"]
    csv_name = "fills"
    csv_columns = [
        ("at", lambda f: f.at), ("id", lambda f: f.pk), ("order_id", lambda f: f.order_id),
        ("client_order_id", lambda f: f.order.client_order_id), ("strategy", lambda f: f.strategy.slug),
        ("symbol", lambda f: f.symbol), ("side", lambda f: f.side), ("qty", lambda f: f.qty),
        ("price", lambda f: f.price), ("value", lambda f: f.qty * f.price), ("realized_pnl", lambda f: f.realized_pnl),
    ]

    @admin.display(description="execution")
    def execution(self, fill: Fill) -> str:
        return f"{fill.get_side_display()} {quantity(fill.qty)} {fill.symbol}"

    @admin.display(description="price")
    def price_display(self, fill: Fill) -> str:
        return money(fill.price)

    @admin.display(description="value")
    def value(self, fill: Fill) -> str:
        return money(fill.qty * fill.price)

    @admin.display(description="realised P&L")
    def realised(self, fill: Fill) -> str:
        return signed_money(fill.realized_pnl) if fill.realized_pnl else "—"

    @admin.display(description="order")
    def order_link(self, fill: Fill) -> str:
        url = reverse("admin:orders_order_change", args=[fill.order_id])
        return format_html('<a href="{}"><span class="bo-id" title="{}">{}</span></a>', url,
                           fill.order.client_order_id, fill.order.client_order_id)


class OpenPositionFilter(admin.SimpleListFilter):
    title = "position"
    parameter_name = "open"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "Open (qty ≠ 0)"), ("no", "Flat")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() == "yes":
            return queryset.exclude(qty=0)
        if self.value() == "no":
            return queryset.filter(qty=0)
        return queryset


class ValuedPositionChangeList(ChangeList):
    """Marks the page's positions at the last trade (one market-data call) for the value columns."""

    def get_results(self, request: HttpRequest) -> None:
        super().get_results(request)
        positions = list(self.result_list)
        limit = RiskLimits.current().max_symbol_concentration_pct
        for valued in valuation.value_positions(positions):
            valued.position.valuation = valued  # type: ignore[attr-defined]
            valued.position.concentration_limit = limit  # type: ignore[attr-defined]
        self.result_list = positions  # type: ignore[assignment]


@admin.register(Position)
class PositionAdmin(ReadOnlyAdminMixin, BackofficeModelAdmin):
    """Where the money is: each position valued at the last trade, and P&L per strategy above the list."""

    list_display = ["strategy", "symbol", "quantity", "average_price", "last_price", "market_value", "unrealised",
                    "pct_of_equity", "concentration", "realised", "adjusted", "updated"]
    list_select_related = ["strategy"]
    list_filter = [OpenPositionFilter, "strategy"]
    search_fields = ["=symbol"]
    actions = None
    change_list_template = "admin/orders/position/valued_change_list.html"

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return ValuedPositionChangeList

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        pnl = valuation.strategy_pnl()
        rows = [
            {"slug": p.slug, "open": p.open_positions, "today": signed_money(p.today) if p.today is not None else "—",
             "realised_today": signed_money(p.realised_today), "realised_total": signed_money(p.realised_total),
             "unrealised": signed_money(p.unrealised) if p.unrealised is not None else "—",
             "total": signed_money(p.total) if p.total is not None else "—",
             "negative": p.total is not None and p.total < 0}
            for p in pnl
        ]
        return super().changelist_view(request, {**(extra_context or {}), "strategy_pnl": rows})

    @staticmethod
    def _valuation(position: Position) -> valuation.ValuedPosition | None:
        return getattr(position, "valuation", None)

    @admin.display(description="qty")
    def quantity(self, position: Position) -> str:
        return quantity(position.qty)

    @admin.display(description="avg price")
    def average_price(self, position: Position) -> str:
        return money(position.avg_price) if position.qty else "—"

    @admin.display(description="last price")
    def last_price(self, position: Position) -> str:
        valued = self._valuation(position)
        return money(valued.last_price) if valued else "—"

    @admin.display(description="market value")
    def market_value(self, position: Position) -> str:
        valued = self._valuation(position)
        return money(valued.market_value) if valued else "—"

    @admin.display(description="unrealised P&L")
    def unrealised(self, position: Position) -> str:
        valued = self._valuation(position)
        if valued is None or valued.unrealized_pnl is None:
            return "—"
        return signed_money(valued.unrealized_pnl)

    @admin.display(description="% of equity")
    def pct_of_equity(self, position: Position) -> str:
        valued = self._valuation(position)
        return percent(valued.pct_of_equity) if valued else "—"

    @admin.display(description="concentration (limit)")
    def concentration(self, position: Position) -> str:
        """The position's share of equity against the symbol concentration limit, highlighted when over.

        The pre-trade check counts the symbol across every strategy plus working
        orders that add exposure; this row shows this position's part of it.
        """
        valued = self._valuation(position)
        limit: Decimal | None = getattr(position, "concentration_limit", None)
        if valued is None or valued.pct_of_equity is None or limit is None:
            return "—"
        share = abs(valued.pct_of_equity)
        text = f"{percent(share, places=1)} of {limit.normalize():f} %"
        if share > limit:
            return badge(text, "breach")
        return badge(text, "warn") if share >= limit * Decimal("0.8") else text

    @admin.display(description="realised P&L")
    def realised(self, position: Position) -> str:
        return signed_money(position.realized_pnl)

    @admin.display(description="updated (UTC)")
    def updated(self, position: Position) -> str:
        return timestamp(position.updated_at)

    fields = ["strategy", "symbol", "qty", "avg_price", "realized_pnl", "updated_at", "ledger_adjustments"]
    readonly_fields = fields

    @admin.display(description="ledger adjustments")
    def adjusted(self, position: Position) -> str:
        count = LedgerAdjustment.objects.filter(
            strategy_id=position.strategy_id, symbol=position.symbol, status=AdjustmentStatus.APPLIED
        ).count()
        return badge(f"{count} adjustment{'s' if count != 1 else ''}", "warn") if count else "—"

    @admin.display(description="ledger adjustments (entries of their own, oldest first)")
    def ledger_adjustments(self, position: Position) -> str:
        rows = LedgerAdjustment.objects.filter(
            strategy_id=position.strategy_id, symbol=position.symbol, status=AdjustmentStatus.APPLIED
        ).select_related("decided_by", "created_by").order_by("decided_at", "id")
        return format_html_join(
            "", '<div data-adjustment="{}">{} @ {} on {} by {}{}: “{}”</div>',
            ((a.pk, f"{a.qty.normalize():+f}", a.price, f"{a.decided_at:%Y-%m-%d %H:%M}", a.decided_by,
              f" (requested by {a.created_by})" if a.decided_by_id != a.created_by_id else "", a.reason)
             for a in rows),
        ) or "—"
