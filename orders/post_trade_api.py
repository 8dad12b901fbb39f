"""/v1/fills, /v1/events and /v1/orders/cancel-all: what a client needs after its orders are in."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api import BODY_ERRORS, COMMON_ERRORS, PROBLEM, StrictSerializer, filtered, problem
from orders import events, selectors, services
from orders.api import SYMBOL_PATTERN, NewestFirst, NullIfBlank
from orders.models import OrderEvent
from orders.states import OrderStatus
from risk.models import Strategy

MAX_EVENT_WAIT_S = 30


# --- Fills ---------------------------------------------------------------------


class FillOut(serializers.Serializer):
    id = serializers.IntegerField()
    order_id = serializers.UUIDField()
    client_order_id = serializers.CharField(source="order.client_order_id")
    strategy = serializers.CharField(source="strategy.slug")
    symbol = serializers.CharField()
    side = serializers.CharField()
    qty = serializers.DecimalField(max_digits=20, decimal_places=8)
    price = serializers.DecimalField(max_digits=20, decimal_places=8)
    at = serializers.DateTimeField()


class FillPage(serializers.Serializer):
    next = serializers.URLField(allow_null=True, help_text="link to the next (older) page")
    previous = serializers.URLField(allow_null=True)
    results = FillOut(many=True)


class FillListQuery(StrictSerializer):
    query_string = True
    strategy = serializers.SlugField(required=False)
    symbol = serializers.RegexField(SYMBOL_PATTERN, required=False)
    order = serializers.UUIDField(required=False)
    after = serializers.DateTimeField(required=False)
    before = serializers.DateTimeField(required=False)
    cursor = serializers.CharField(required=False)
    limit = serializers.IntegerField(required=False, min_value=1, max_value=500)


class NewestFillFirst(NewestFirst):
    ordering = ("-at", "-id")


class FillList(APIView):
    @extend_schema(
        operation_id="fills_list",
        parameters=[
            OpenApiParameter("strategy", str),
            OpenApiParameter("symbol", str),
            OpenApiParameter("order", str, description="order id (UUID)"),
            OpenApiParameter("after", str, description="ISO 8601 datetime: fills strictly after"),
            OpenApiParameter("before", str, description="ISO 8601 datetime: fills strictly before"),
            OpenApiParameter("cursor", str),
            OpenApiParameter("limit", int),
        ],
        responses={200: FillPage, (400, PROBLEM): problem("Bad filter or cursor"), **COMMON_ERRORS},
    )
    def get(self, request: Request) -> Response:
        query = FillListQuery(data=request.query_params.dict())
        query.is_valid(raise_exception=True)
        fills = filtered(selectors.visible_fills(request.user), query.validated_data, {
            "strategy": "strategy__slug", "symbol": "symbol", "order": "order_id",
            "after": "at__gt", "before": "at__lt",
        })
        paginator = NewestFillFirst()
        page = paginator.paginate_queryset(fills, request, view=self)
        return paginator.get_paginated_response(FillOut(page, many=True).data)


# --- Events --------------------------------------------------------------------


class EventTransitionOut(serializers.Serializer):
    from_ = NullIfBlank(source="from_status", allow_null=True, help_text="null for the order's creation")
    to = serializers.CharField(source="to_status")
    at = serializers.DateTimeField()
    actor = serializers.CharField(source="actor_label")
    reason = serializers.CharField(allow_blank=True)

    def get_fields(self) -> dict[str, serializers.Field]:
        fields = super().get_fields()
        return {("from" if name == "from_" else name): field for name, field in fields.items()}


class EventFillOut(serializers.Serializer):
    id = serializers.IntegerField()
    qty = serializers.DecimalField(max_digits=20, decimal_places=8)
    price = serializers.DecimalField(max_digits=20, decimal_places=8)
    cumulative_qty = serializers.DecimalField(max_digits=20, decimal_places=8)
    at = serializers.DateTimeField()


class EventOut(serializers.Serializer):
    id = serializers.IntegerField()
    kind = serializers.SerializerMethodField(help_text="transition, fill, or transition_with_fill")
    order_id = serializers.UUIDField()
    client_order_id = serializers.CharField(source="order.client_order_id")
    strategy = serializers.CharField(source="strategy.slug")
    symbol = serializers.CharField(source="order.symbol")
    side = serializers.CharField(source="order.side")
    at = serializers.DateTimeField()
    transition = EventTransitionOut(allow_null=True)
    fill = EventFillOut(allow_null=True)

    def get_kind(self, event: OrderEvent) -> str:
        if event.transition_id and event.fill_id:
            return "transition_with_fill"
        return "transition" if event.transition_id else "fill"


class EventPage(serializers.Serializer):
    results = EventOut(many=True)
    next = serializers.CharField(
        help_text="pass it as ?after= on the next call; the same cursor comes back when nothing new has happened"
    )
    has_more = serializers.BooleanField(help_text="true when more events are ready now")


class EventQuery(StrictSerializer):
    query_string = True
    after = serializers.CharField(required=False, max_length=200)
    limit = serializers.IntegerField(required=False, min_value=1, max_value=500)
    wait = serializers.IntegerField(required=False, min_value=0, max_value=MAX_EVENT_WAIT_S)


class EventFeed(APIView):
    @extend_schema(
        operation_id="events_list",
        parameters=[
            OpenApiParameter("after", str, description="the `next` cursor of the previous answer; omit to start"),
            OpenApiParameter("limit", int, description="at most this many events (default 100, max 500)"),
            OpenApiParameter(
                "wait", int, description=f"long-poll: wait up to this many seconds (max {MAX_EVENT_WAIT_S}) for one"
            ),
        ],
        responses={200: EventPage, (400, PROBLEM): problem("Bad cursor or parameter"), **COMMON_ERRORS},
    )
    def get(self, request: Request) -> Response:
        query = EventQuery(data=request.query_params.dict())
        query.is_valid(raise_exception=True)
        params = query.validated_data
        try:
            cursor = events.Cursor.decode(params["after"]) if "after" in params else events.START
        except events.InvalidCursor as exc:
            raise ValidationError({"after": [str(exc)]}) from None
        limit = params.get("limit", 100)
        found, next_cursor = events.events_after(
            selectors.visible_events(request.user), cursor=cursor, limit=limit + 1, wait_s=params.get("wait", 0)
        )
        has_more = len(found) > limit
        if has_more:
            found = found[:limit]
            next_cursor = events.Cursor(found[-1].txid, found[-1].id)
        return Response(
            EventPage({"results": found, "next": next_cursor.encode(), "has_more": has_more}).data
        )


# --- Cancel all ----------------------------------------------------------------


class CancelAllIn(StrictSerializer):
    strategy = serializers.SlugField(max_length=64)


class CancelAllOut(serializers.Serializer):
    strategy = serializers.CharField()
    count = serializers.IntegerField(help_text="working orders a cancel was requested for by this call")


class CancelAll(APIView):
    @extend_schema(
        operation_id="orders_cancel_all",
        request=CancelAllIn,
        responses={
            202: OpenApiResponse(CancelAllOut, description="Cancels requested"),
            (400, PROBLEM): problem("Malformed input"),
            (404, PROBLEM): problem("Unknown strategy"),
            **BODY_ERRORS,
            **COMMON_ERRORS,
        },
    )
    def post(self, request: Request) -> Response:
        data = CancelAllIn(data=request.data)
        data.is_valid(raise_exception=True)
        slug = data.validated_data["strategy"]
        strategy = get_object_or_404(Strategy, slug=slug)
        user: Any = request.user
        if not (user.has_perm("orders.cancel_any_order") or strategy.clients.filter(pk=user.pk).exists()):
            raise PermissionDenied(f"You may not cancel orders of strategy {slug}.")
        working = (
            selectors.working_orders()
            .filter(strategy=strategy)
            .exclude(status=OrderStatus.PENDING_CANCEL)
            .select_related("strategy")
            .order_by("created_at")
        )
        count = 0
        for order in working:
            try:
                # The same service as DELETE /v1/orders/{id}: one cancel per order, each audited.
                services.order_cancel(acting_user=user, order=order, reason="cancel-all requested")
            except services.OrderNotCancellable:
                continue  # it became terminal (filled, say) since the listing
            except DjangoPermissionDenied:
                raise PermissionDenied(f"You may not cancel orders of strategy {slug}.") from None
            count += 1
        return Response(CancelAllOut({"strategy": slug, "count": count}).data, status=status.HTTP_202_ACCEPTED)
