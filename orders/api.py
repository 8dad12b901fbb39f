"""/v1/orders and /v1/positions: parse, authorise, call a service, render."""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import math
from decimal import Decimal
from typing import Any

from django.db import connection
from django.shortcuts import get_object_or_404
from django.utils.dateparse import parse_datetime
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound, PermissionDenied, ValidationError
from rest_framework.pagination import CursorPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api import BODY_ERRORS, COMMON_ERRORS, PROBLEM, StrictSerializer, ViolationSerializer, filtered, problem
from core.problems import problem_response
from core.sql import instance_from_json, prepared_cursor
from core.throttles import ClientAssetLookupThrottle
from orders import selectors, services, valuation
from orders.models import Order, OrderType, ReconciliationRun, Side, TimeInForce
from orders.risk_picture import risk_picture
from orders.states import OrderStatus
from risk.models import Strategy

MAX_QTY = Decimal("10000000")
MAX_PRICE = Decimal("1000000")
SYMBOL_PATTERN = r"^[A-Z][A-Z0-9.]{0,15}$"
CLIENT_ORDER_ID_PATTERN = r"^[A-Za-z0-9._:\-]{1,128}$"


class NullIfBlank(serializers.CharField):
    def to_representation(self, value: Any) -> str | None:
        return value or None


class TransitionOut(serializers.Serializer):
    from_ = NullIfBlank(source="from_status", allow_null=True, help_text="null for the order's creation")
    to = serializers.CharField(source="to_status")
    at = serializers.DateTimeField()
    actor = serializers.CharField(source="actor_label")
    reason = serializers.CharField(allow_blank=True)

    def get_fields(self) -> dict[str, serializers.Field]:
        # "from" is a Python keyword: declared as from_, served (and documented) as "from".
        fields = super().get_fields()
        return {("from" if name == "from_" else name): field for name, field in fields.items()}


class OrderOut(serializers.ModelSerializer):
    strategy = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    violations = ViolationSerializer(many=True, read_only=True)
    parent = serializers.PrimaryKeyRelatedField(
        read_only=True, allow_null=True, help_text="a leg's entry order (null for an entry or a simple order)"
    )
    replaces = serializers.PrimaryKeyRelatedField(
        read_only=True, allow_null=True, help_text="an amend: the order this one replaced at the broker"
    )

    class Meta:
        model = Order
        fields = [
            "id", "client_order_id", "strategy", "symbol", "side", "qty", "type", "limit_price", "stop_price",
            "time_in_force", "stop_loss", "take_profit", "parent", "origin", "extended_hours", "status", "filled_qty",
            "filled_avg_price", "broker_order_id", "replaces", "reject_reason", "violations", "created_at",
            "updated_at", "sent_at",
            # While the order is pending_cancel, how driving the cancel to the broker is going (adr/0011).
            "cancel_requested_at", "cancel_attempts", "cancel_last_attempt_at", "cancel_next_attempt_at",
            "cancel_last_error",
        ]
        read_only_fields = fields


class OrderDetailOut(OrderOut):
    transitions = serializers.SerializerMethodField()
    legs = serializers.SerializerMethodField()

    class Meta(OrderOut.Meta):
        fields = [*OrderOut.Meta.fields, "transitions", "legs"]
        read_only_fields = fields

    @extend_schema_field(TransitionOut(many=True))
    def get_transitions(self, order: Order) -> list[dict[str, Any]]:
        return TransitionOut(order.transitions.all(), many=True).data

    @extend_schema_field(OrderOut(many=True, help_text="the stop-loss and take-profit legs the broker placed"))
    def get_legs(self, order: Order) -> list[dict[str, Any]]:
        return OrderOut(order.legs.select_related("strategy").order_by("created_at", "id"), many=True).data


class OrderIn(StrictSerializer):
    client_order_id = serializers.RegexField(CLIENT_ORDER_ID_PATTERN, required=False, max_length=128)
    strategy = serializers.SlugField(max_length=64)
    symbol = serializers.RegexField(SYMBOL_PATTERN, max_length=16)
    side = serializers.ChoiceField(choices=Side.choices)
    qty = serializers.DecimalField(max_digits=20, decimal_places=8, min_value=Decimal("0.00000001"), max_value=MAX_QTY)
    type = serializers.ChoiceField(choices=OrderType.choices)
    limit_price = serializers.DecimalField(
        max_digits=20, decimal_places=8, min_value=Decimal("0.0001"), max_value=MAX_PRICE, required=False,
        allow_null=True,
    )
    stop_price = serializers.DecimalField(
        max_digits=20, decimal_places=8, min_value=Decimal("0.0001"), max_value=MAX_PRICE, required=False,
        allow_null=True, help_text="stop and stop_limit orders: the trade price that triggers the order",
    )
    time_in_force = serializers.ChoiceField(choices=TimeInForce.choices, default=TimeInForce.DAY)
    stop_loss = serializers.DecimalField(
        max_digits=20, decimal_places=8, min_value=Decimal("0.0001"), max_value=MAX_PRICE, required=False,
        allow_null=True,
    )
    take_profit = serializers.DecimalField(
        max_digits=20, decimal_places=8, min_value=Decimal("0.0001"), max_value=MAX_PRICE, required=False,
        allow_null=True, help_text="with stop_loss: a take-profit limit leg too (Alpaca bracket)",
    )
    extended_hours = serializers.BooleanField(default=False)

    # Which prices each order type takes (Alpaca's rule): required when listed, refused when not.
    PRICES_BY_TYPE: dict[str, tuple[str, ...]] = {
        OrderType.MARKET: (),
        OrderType.LIMIT: ("limit_price",),
        OrderType.STOP: ("stop_price",),
        OrderType.STOP_LIMIT: ("limit_price", "stop_price"),
    }

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        order_type = attrs["type"]
        takes = self.PRICES_BY_TYPE[order_type]
        errors: dict[str, list[str]] = {}
        for name in ("limit_price", "stop_price"):
            given = attrs.get(name) is not None
            if name in takes and not given:
                errors[name] = [f"A {order_type} order needs a {name}."]
            elif given and name not in takes:
                errors[name] = [f"A {order_type} order must not carry a {name}."]
        protected = attrs.get("stop_loss") is not None
        if attrs.get("take_profit") is not None and not protected:
            errors["take_profit"] = ["A take_profit is sent with a stop_loss (a bracket): give both."]
        if protected and attrs.get("time_in_force") not in (TimeInForce.DAY, TimeInForce.GTC):
            errors["time_in_force"] = ["An order with stop_loss legs must be day or gtc (the broker's rule)."]
        if protected and attrs.get("extended_hours"):
            errors["extended_hours"] = ["An order with stop_loss legs cannot trade in extended hours."]
        if errors:
            raise ValidationError(errors)
        return attrs


class OrderAmendIn(StrictSerializer):
    client_order_id = serializers.RegexField(
        CLIENT_ORDER_ID_PATTERN, required=False, max_length=128,
        help_text="the replacement's id and the idempotency key (default: derived from the order and the values)",
    )
    qty = serializers.DecimalField(
        max_digits=20, decimal_places=8, min_value=Decimal("0.00000001"), max_value=MAX_QTY, required=False
    )
    limit_price = serializers.DecimalField(
        max_digits=20, decimal_places=8, min_value=Decimal("0.0001"), max_value=MAX_PRICE, required=False
    )
    stop_price = serializers.DecimalField(
        max_digits=20, decimal_places=8, min_value=Decimal("0.0001"), max_value=MAX_PRICE, required=False
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if not {"qty", "limit_price", "stop_price"} & set(attrs):
            raise ValidationError({"non_field_errors": ["Give at least one of qty, limit_price, stop_price."]})
        return attrs


class NewestFirst(CursorPagination):
    ordering: str | tuple[str, ...] = "-created_at"
    page_size = 100
    page_size_query_param = "limit"
    max_page_size = 500

    def decode_cursor(self, request: Request) -> Any:
        """DRF's decoder, plus the check it leaves out: the position must be a timestamp.

        A forged cursor (``p=garbage``, ``p=1e400``) otherwise reaches the
        database as a filter value and fails there with a 500.
        """
        invalid = ValidationError({"cursor": ["Invalid cursor: use the next or previous link of a page."]})
        try:
            cursor = super().decode_cursor(request)
        except NotFound:
            raise invalid from None
        if cursor is not None and cursor.position is not None:
            try:
                position = parse_datetime(cursor.position)
                # Aware, and representable in UTC (year 1 at +01:00 is not).
                valid = position is not None and position.tzinfo is not None and bool(position.astimezone(dt.UTC))
            except (ValueError, OverflowError):
                valid = False
            if not valid:
                raise invalid
        return cursor


class OrderPage(serializers.Serializer):
    next = serializers.URLField(allow_null=True, help_text="link to the next (older) page")
    previous = serializers.URLField(allow_null=True)
    results = OrderOut(many=True)


class OrderListQuery(StrictSerializer):
    query_string = True  # every value of a query string is text; the fields parse it
    status = serializers.ChoiceField(choices=OrderStatus.choices, required=False)
    strategy = serializers.SlugField(required=False)
    symbol = serializers.RegexField(SYMBOL_PATTERN, required=False)
    created_after = serializers.DateTimeField(required=False)
    created_before = serializers.DateTimeField(required=False)
    cursor = serializers.CharField(required=False)
    limit = serializers.IntegerField(required=False, min_value=1, max_value=500)


def _order_answer(outcome: services.SubmitOutcome) -> Response:
    """201 for a new order (or amend), 200 for an idempotent replay, 400 problem for a risk denial."""
    order = outcome.order
    body = order_body(order)
    if outcome.replayed:
        return Response(body, status=status.HTTP_200_OK, headers={"Idempotent-Replayed": "true"})
    if order.status == OrderStatus.DENIED:
        return problem_response(
            400,
            slug="risk-denied",
            title="Denied by pre-trade risk check",
            detail="The order was denied: " + "; ".join(v["message"] for v in order.violations),
            violations=order.violations,
            order_id=str(order.pk),
            order=body,
        )
    return Response(body, status=status.HTTP_201_CREATED)


@functools.cache
def _strategy_sql(vendor: str) -> str:
    """The strategy by slug with whether a client may trade it, written once per process.

    PostgreSQL: the row as JSON (a prepared statement's result type never follows the table's
    columns); elsewhere the row itself for ``Strategy.objects.raw``.
    """
    quote = connection.ops.quote_name
    grants = Strategy.clients.through._meta
    granted = (
        f"EXISTS(SELECT 1 FROM {quote(grants.db_table)} g WHERE g.{quote(grants.get_field('strategy').column)} = s.id "
        f"AND g.{quote(grants.get_field('user').column)} = %s)"
    )
    row = "row_to_json(s)::text" if vendor == "postgresql" else "s.*"
    return f"SELECT {row}, {granted} AS granted FROM {quote(Strategy._meta.db_table)} s WHERE s.slug = %s"


def _strategy_for(user: Any, slug: str) -> Strategy:
    """Unknown strategy: 404. Known but not granted to this client: 403. One query, written out (issue 19)."""
    strategy: Strategy | None
    if connection.vendor == "postgresql":  # prepared once per connection; the row as JSON keeps its result type fixed
        with prepared_cursor() as cursor:
            cursor.execute(_strategy_sql(connection.vendor), [user.pk, slug])
            row = cursor.fetchone()
        strategy, allowed = (instance_from_json(Strategy, row[0]), row[1]) if row is not None else (None, False)
    else:
        strategy = next(iter(Strategy.objects.raw(_strategy_sql(connection.vendor), [user.pk, slug])), None)
        allowed = getattr(strategy, "granted", False)
    if strategy is None:
        raise NotFound(f"There is no strategy {slug}.")
    if not allowed:
        raise PermissionDenied(f"You are not allowed to trade strategy {slug}.")
    return strategy


@functools.cache
def _order_out() -> OrderOut:
    # Built once: a serializer instance deep-copies and binds its fields on every
    # construction, which costs more than rendering one order (issue 19).
    return OrderOut()


def order_body(order: Order) -> dict[str, Any]:
    """An order as OrderOut renders it, without building a serializer per answer."""
    return _order_out().to_representation(order)


class OrderListCreate(APIView):
    @extend_schema(
        operation_id="orders_create",
        request=OrderIn,
        responses={
            201: OpenApiResponse(
                OrderOut, description="Created (also when the send's outcome is unknown, or the broker rejected it)"
            ),
            200: OpenApiResponse(OrderOut, description="Idempotent replay: header Idempotent-Replayed: true"),
            (400, PROBLEM): problem(
                "Malformed input (nothing stored), "
                "or denied by the pre-trade check (stored; order_id and violations given)"
            ),
            (404, PROBLEM): problem("Unknown strategy"),
            (409, PROBLEM): problem("client_order_id already used with another payload"),
            **BODY_ERRORS,
            (503, PROBLEM): problem(
                "The broker could not be asked something order entry needs; nothing stored, retry (Retry-After)"
            ),
            **COMMON_ERRORS,
        },
    )
    def post(self, request: Request) -> Response:
        data = OrderIn(data=request.data)
        data.is_valid(raise_exception=True)
        fields = data.validated_data
        strategy = _strategy_for(request.user, fields.pop("strategy"))
        order_request = services.OrderRequest(strategy=strategy, **fields)
        lookups = ClientAssetLookupThrottle()
        try:
            # Other refusals (InvalidOrder, IdempotencyConflict, BrokerUnreachable)
            # are BusinessRefusals: core.problems.exception_handler answers them.
            outcome = services.order_submit(
                acting_user=request.user,
                request=order_request,
                may_ask_broker=lambda: lookups.allow_request(request, self),
            )
        except services.LookupBudgetSpent as exc:
            # Nothing was stored; the client's own lookup window says when to retry.
            exc.headers = {"Retry-After": str(math.ceil(lookups.wait()))}
            raise
        return _order_answer(outcome)

    @extend_schema(
        operation_id="orders_list",
        parameters=[
            OpenApiParameter("status", str, enum=OrderStatus.values),
            OpenApiParameter("strategy", str),
            OpenApiParameter("symbol", str),
            OpenApiParameter("created_after", str, description="ISO 8601 datetime"),
            OpenApiParameter("created_before", str, description="ISO 8601 datetime"),
            OpenApiParameter("cursor", str),
            OpenApiParameter("limit", int),
        ],
        responses={200: OrderPage, (400, PROBLEM): problem("Bad filter or cursor"), **COMMON_ERRORS},
    )
    def get(self, request: Request) -> Response:
        query = OrderListQuery(data=request.query_params.dict())
        query.is_valid(raise_exception=True)
        orders = filtered(selectors.visible_orders(request.user), query.validated_data, {
            "status": "status", "strategy": "strategy__slug", "symbol": "symbol",
            "created_after": "created_at__gt", "created_before": "created_at__lt",
        })
        paginator = NewestFirst()
        page = paginator.paginate_queryset(orders, request, view=self)
        return paginator.get_paginated_response(OrderOut(page, many=True).data)


class OrderDetail(APIView):
    def _order(self, request: Request, pk: Any) -> Order:
        # Another client's order is 404: its existence is not revealed.
        return get_object_or_404(selectors.visible_orders(request.user), pk=pk)

    @extend_schema(
        operation_id="orders_retrieve",
        responses={200: OrderDetailOut, (404, PROBLEM): problem("No such order"), **COMMON_ERRORS},
    )
    def get(self, request: Request, pk: Any) -> Response:
        return Response(OrderDetailOut(self._order(request, pk)).data)

    @extend_schema(
        operation_id="orders_amend",
        request=OrderAmendIn,
        responses={
            201: OpenApiResponse(
                OrderOut, description="The replacement, sent as the broker's replace (its status says how it went)"
            ),
            200: OpenApiResponse(OrderOut, description="Idempotent replay: header Idempotent-Replayed: true"),
            (400, PROBLEM): problem(
                "Malformed input (nothing stored), or the new values denied by the pre-trade check "
                "(the replacement stored denied; order_id and violations given)"
            ),
            (404, PROBLEM): problem("No such order"),
            (409, PROBLEM): problem("The order cannot be amended now, or client_order_id used with another payload"),
            **BODY_ERRORS,
            **COMMON_ERRORS,
        },
    )
    def patch(self, request: Request, pk: Any) -> Response:
        data = OrderAmendIn(data=request.data)
        data.is_valid(raise_exception=True)
        order = self._order(request, pk)
        _strategy_for(request.user, order.strategy.slug)  # amending is trading: the strategy's clients only
        outcome = services.order_amend(
            acting_user=request.user, order=order, request=services.AmendRequest(**data.validated_data)
        )
        return _order_answer(outcome)

    @extend_schema(
        operation_id="orders_cancel",
        request=None,
        responses={
            202: OpenApiResponse(OrderOut, description="Cancel requested"),
            (404, PROBLEM): problem("No such order"),
            (409, PROBLEM): problem("The order is terminal"),
            **COMMON_ERRORS,
        },
    )
    def delete(self, request: Request, pk: Any) -> Response:
        order = self._order(request, pk)
        order = services.order_cancel(acting_user=request.user, order=order)
        return Response(OrderOut(order).data, status=status.HTTP_202_ACCEPTED)


class BreakOut(serializers.Serializer):
    symbol = serializers.CharField()
    broker_qty = serializers.DecimalField(max_digits=20, decimal_places=8)
    ledger_qty = serializers.DecimalField(max_digits=20, decimal_places=8)
    status = serializers.CharField()


class AdjustmentOut(serializers.Serializer):
    qty = serializers.DecimalField(max_digits=20, decimal_places=8, help_text="signed: added to the position")
    price = serializers.DecimalField(max_digits=20, decimal_places=8)
    reason = serializers.CharField()
    at = serializers.DateTimeField(source="decided_at")
    by = serializers.CharField(source="decided_by.username", help_text="the officer who applied (or approved) it")
    requested_by = serializers.CharField(
        source="approval_requested_by_name", allow_null=True, help_text="under four-eyes, the first officer"
    )


class PositionOut(serializers.Serializer):
    strategy = serializers.CharField(source="strategy.slug")
    symbol = serializers.CharField()
    qty = serializers.DecimalField(max_digits=20, decimal_places=8)
    avg_price = serializers.DecimalField(max_digits=20, decimal_places=8)
    realized_pnl = serializers.DecimalField(max_digits=20, decimal_places=2)
    last_price = serializers.DecimalField(
        max_digits=20, decimal_places=8, allow_null=True, help_text="last trade; null when no price could be had"
    )
    market_value = serializers.DecimalField(
        max_digits=20, decimal_places=2, allow_null=True, help_text="qty x last_price (negative when short)"
    )
    unrealized_pnl = serializers.DecimalField(max_digits=20, decimal_places=2, allow_null=True)
    pct_of_equity = serializers.DecimalField(
        max_digits=12, decimal_places=4, allow_null=True, help_text="market_value / account equity, percent"
    )
    reconciled_at = serializers.DateTimeField(allow_null=True)
    breaks = BreakOut(many=True)
    adjustments = AdjustmentOut(many=True, help_text="ledger adjustments that resolved breaks: entries of their own")


class ReconciliationOut(serializers.Serializer):
    reconciled_at = serializers.DateTimeField(allow_null=True)
    breaks = BreakOut(many=True)


class PositionsOut(serializers.Serializer):
    results = PositionOut(many=True)
    reconciliation = ReconciliationOut()


class PositionListQuery(StrictSerializer):
    query_string = True
    include_flat = serializers.BooleanField(required=False, default=False)


class PositionList(APIView):
    @extend_schema(
        operation_id="positions_list",
        parameters=[OpenApiParameter("include_flat", bool, description="also list positions with qty 0")],
        responses={200: PositionsOut, (400, PROBLEM): problem("Bad parameter"), **COMMON_ERRORS},
    )
    def get(self, request: Request) -> Response:
        query = PositionListQuery(data=request.query_params.dict())
        query.is_valid(raise_exception=True)
        run: ReconciliationRun | None = selectors.latest_reconciliation()
        breaks = valuation.breaks_to_show(run)
        by_symbol: dict[str, list] = {}
        for item in breaks:
            by_symbol.setdefault(item.symbol, []).append(item)
        reconciled_at = run.at if run else None
        valued = valuation.positions_valued(
            selectors.visible_positions(request.user), include_flat=query.validated_data["include_flat"]
        )
        adjustments = valuation.adjustments_by_position([v.position for v in valued])
        results = [
            {
                "strategy": v.position.strategy,
                "symbol": v.position.symbol,
                "qty": v.position.qty,
                "avg_price": v.position.avg_price,
                "realized_pnl": v.position.realized_pnl,
                "last_price": v.last_price,
                "market_value": v.market_value,
                "unrealized_pnl": v.unrealized_pnl,
                "pct_of_equity": v.pct_of_equity,
                "reconciled_at": reconciled_at,
                "breaks": by_symbol.get(v.position.symbol, []),
                "adjustments": adjustments.get(v.position.pk, []),
            }
            for v in valued
        ]
        return Response(
            PositionsOut(
                {"results": results, "reconciliation": {"reconciled_at": reconciled_at, "breaks": breaks}}
            ).data
        )


class LimitOut(serializers.Serializer):
    name = serializers.CharField()
    unit = serializers.CharField()
    limit = serializers.CharField()
    current = serializers.CharField(allow_null=True)
    utilisation_pct = serializers.CharField(allow_null=True)


class BreakerOut(serializers.Serializer):
    state = serializers.CharField()
    since = serializers.DateTimeField()
    reason = serializers.CharField(allow_blank=True)


class StrategyUsageOut(serializers.Serializer):
    strategy = serializers.CharField()
    mode = serializers.CharField()
    paused = serializers.BooleanField()
    allocation = serializers.DecimalField(max_digits=20, decimal_places=2, help_text="dollars")
    allocation_used = serializers.DecimalField(
        max_digits=20, decimal_places=2, help_text="positions at market plus working orders that add exposure"
    )
    daily_pnl = serializers.DecimalField(max_digits=20, decimal_places=2, help_text="realised today plus unrealised")
    daily_loss_limit = serializers.DecimalField(max_digits=20, decimal_places=2, help_text="dollars")
    orders_last_minute = serializers.IntegerField()
    max_orders_per_minute = serializers.IntegerField(help_text="the throttle")
    max_orders_per_second = serializers.IntegerField()


class PeakOut(serializers.Serializer):
    equity = serializers.DecimalField(max_digits=20, decimal_places=2, help_text="the high-water mark")
    since = serializers.DateTimeField(help_text="when it last restarted (an officer's reset)")
    by = serializers.CharField(allow_null=True, help_text="the officer whose reset restarted it")
    reason = serializers.CharField(allow_blank=True)


class RiskOut(serializers.Serializer):
    equity = serializers.DecimalField(max_digits=20, decimal_places=2)
    day_start_equity = serializers.DecimalField(max_digits=20, decimal_places=2)
    peak_equity = serializers.DecimalField(max_digits=20, decimal_places=2)
    equity_at = serializers.DateTimeField(allow_null=True)
    peak = PeakOut()
    daily_drawdown_base = serializers.DecimalField(
        max_digits=20, decimal_places=2,
        help_text="the equity the daily drawdown is measured from: day-start equity, or today's breaker re-base",
    )
    daily_drawdown = serializers.DecimalField(max_digits=10, decimal_places=4, help_text="percent")
    total_drawdown = serializers.DecimalField(max_digits=10, decimal_places=4, help_text="percent")
    circuit_breaker = BreakerOut()
    capital_deployed = serializers.DecimalField(max_digits=20, decimal_places=2)
    unpriced_symbols = serializers.ListField(
        child=serializers.CharField(),
        help_text="symbols with a position or a working order but no fresh price: orders that add exposure are "
        "denied stale_price until they have one",
    )
    working_orders = serializers.IntegerField()
    limits = LimitOut(many=True)
    strategies = StrategyUsageOut(many=True, help_text="the caller's strategies (all of them for staff)")


class RiskView(APIView):
    @extend_schema(operation_id="risk_retrieve", responses={200: RiskOut, **COMMON_ERRORS})
    def get(self, request: Request) -> Response:
        picture = risk_picture()
        if not request.user.has_perm("risk.view_strategy"):
            mine = set(request.user.strategies.values_list("slug", flat=True))
            picture = dataclasses.replace(picture, strategies=[s for s in picture.strategies if s["strategy"] in mine])
        return Response(RiskOut(picture).data)
