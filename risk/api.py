"""/v1/controls: the kill switch and paper/live modes. Parse, authorise, call a service."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api import BODY_ERRORS, COMMON_ERRORS, PROBLEM, StrictSerializer, problem
from risk import services
from risk.models import KillSwitch, KillSwitchSource, Mode, RiskLimits, Strategy


class KillSwitchOut(serializers.Serializer):
    active = serializers.BooleanField()
    activated_at = serializers.DateTimeField(allow_null=True)
    activated_by = serializers.CharField(source="activated_by.username", allow_null=True, default=None)
    reason = serializers.CharField(allow_blank=True)
    source = serializers.CharField(allow_blank=True)
    reset_pending = serializers.BooleanField()
    reset_requested_by = serializers.CharField(source="reset_requested_by.username", allow_null=True, default=None)


class StrategyKillSwitchOut(KillSwitchOut):
    strategy = serializers.CharField(source="strategy.slug")


class KillSwitchStateOut(serializers.Serializer):
    global_ = KillSwitchOut()
    strategies = StrategyKillSwitchOut(many=True)

    def get_fields(self) -> dict[str, serializers.Field]:
        # "global" is a Python keyword: declared as global_, served (and documented) as "global".
        fields = super().get_fields()
        fields["global_"].source = "global_"
        return {("global" if name == "global_" else name): field for name, field in fields.items()}


class KillSwitchIn(StrictSerializer):
    action = serializers.ChoiceField(choices=["activate", "deactivate", "reject_reset"])
    scope = serializers.ChoiceField(choices=["global", "strategy"])
    strategy = serializers.SlugField(required=False)
    reason = serializers.CharField(required=False, allow_blank=True, max_length=2000)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs["scope"] == "strategy" and not attrs.get("strategy"):
            raise ValidationError({"strategy": ["Required when scope is strategy."]})
        if attrs["scope"] == "global" and attrs.get("strategy"):
            raise ValidationError({"strategy": ["Not allowed when scope is global."]})
        if not (attrs.get("reason") or "").strip():
            raise ValidationError({"reason": ["A reason is required."]})
        return attrs


def _visible_strategies(user: Any) -> Any:
    if user.has_perm("risk.view_strategy"):
        return Strategy.objects.all()
    return Strategy.objects.filter(clients=user)


def _strategy(user: Any, slug: str) -> Strategy:
    """Unknown strategy: 404. A strategy the caller neither trades nor oversees: 403 (as POST /v1/orders)."""
    strategy = get_object_or_404(Strategy, slug=slug)
    if not _visible_strategies(user).filter(pk=strategy.pk).exists():
        raise PermissionDenied(f"You are not allowed to act on strategy {slug}.")
    return strategy


def _state(user: Any) -> dict[str, Any]:
    global_switch = KillSwitch.objects.select_related("activated_by", "reset_requested_by").get(strategy__isnull=True)
    strategies = KillSwitch.objects.select_related("strategy", "activated_by", "reset_requested_by").filter(
        strategy__in=_visible_strategies(user)
    ).order_by("strategy__slug")
    return KillSwitchStateOut({"global_": global_switch, "strategies": strategies}).data


class KillSwitchView(APIView):
    @extend_schema(operation_id="kill_switch_state", responses={200: KillSwitchStateOut, **COMMON_ERRORS})
    def get(self, request: Request) -> Response:
        return Response(_state(request.user))

    @extend_schema(
        operation_id="kill_switch_control",
        request=KillSwitchIn,
        responses={
            200: OpenApiResponse(KillSwitchStateOut, description="Done"),
            202: OpenApiResponse(KillSwitchStateOut, description="Reset requested; awaiting a second officer"),
            (400, PROBLEM): problem("Malformed, or not possible now (e.g. no reason, not active)"),
            (404, PROBLEM): problem("Unknown strategy"),
            **BODY_ERRORS,
            **COMMON_ERRORS,
        },
    )
    def post(self, request: Request) -> Response:
        data = KillSwitchIn(data=request.data)
        data.is_valid(raise_exception=True)
        fields = data.validated_data
        strategy = _strategy(request.user, fields["strategy"]) if fields["scope"] == "strategy" else None
        # A refusal (RiskActionError) or a missing permission is answered by core.problems.exception_handler.
        if fields["action"] == "activate":
            services.killswitch_activate(
                acting_user=request.user, strategy=strategy, reason=fields["reason"], source=KillSwitchSource.API
            )
            code = status.HTTP_200_OK
        elif fields["action"] == "deactivate":
            outcome = services.killswitch_reset(acting_user=request.user, strategy=strategy, reason=fields["reason"])
            code = status.HTTP_200_OK if outcome.done else status.HTTP_202_ACCEPTED
        else:
            services.killswitch_reset_reject(acting_user=request.user, strategy=strategy, reason=fields["reason"])
            code = status.HTTP_200_OK
        return Response(_state(request.user), status=code)


class ModeTransitionIn(StrictSerializer):
    strategy = serializers.SlugField()
    target_mode = serializers.ChoiceField(choices=Mode.choices)
    reason = serializers.CharField(max_length=2000)


class ModeOut(serializers.Serializer):
    strategy = serializers.CharField(source="slug")
    mode = serializers.CharField()


class ModeTransitionView(APIView):
    @extend_schema(
        operation_id="mode_transition",
        request=ModeTransitionIn,
        responses={
            200: ModeOut,
            (400, PROBLEM): problem("Malformed, or a precondition fails"),
            (404, PROBLEM): problem("Unknown strategy"),
            **BODY_ERRORS,
            **COMMON_ERRORS,
        },
    )
    def post(self, request: Request) -> Response:
        data = ModeTransitionIn(data=request.data)
        data.is_valid(raise_exception=True)
        fields = data.validated_data
        strategy = _strategy(request.user, fields["strategy"])
        strategy = services.strategy_transition_mode(
            acting_user=request.user, strategy=strategy, target_mode=fields["target_mode"], reason=fields["reason"]
        )
        return Response(ModeOut(strategy).data)


class ModeView(APIView):
    @extend_schema(
        operation_id="mode_retrieve",
        responses={200: ModeOut, (404, PROBLEM): problem("Unknown strategy"), **COMMON_ERRORS},
    )
    def get(self, request: Request, slug: str) -> Response:
        return Response(ModeOut(_strategy(request.user, slug)).data)


# --- /v1/risk/limits ------------------------------------------------------------------

LIMIT_FIELDS = [
    f.name for f in RiskLimits._meta.get_fields() if getattr(f, "editable", False) and f.name not in {"id"}
]


class LimitsOut(serializers.ModelSerializer):
    """Every portfolio and order limit by its field name, and the restricted list."""

    restricted_symbols = serializers.ListField(child=serializers.CharField())

    class Meta:
        model = RiskLimits
        fields = [*LIMIT_FIELDS, "restricted_symbols", "updated_at"]


class LimitsIn(StrictSerializer, serializers.ModelSerializer):
    """Any subset of the limits, the whole restricted list if it changes, and the reason (required)."""

    restricted_symbols = serializers.ListField(
        child=serializers.RegexField(rf"^{services.SYMBOL_PATTERN.pattern}$", max_length=16),
        required=False,
        max_length=1000,
    )
    reason = serializers.CharField(max_length=2000)

    class Meta:
        model = RiskLimits
        fields = [*LIMIT_FIELDS, "restricted_symbols", "reason"]
        extra_kwargs = {name: {"required": False} for name in LIMIT_FIELDS}

    def validate_reason(self, value: str) -> str:
        if not value.strip():
            raise ValidationError("A reason is required.")
        return value


def _limits() -> dict[str, Any]:
    limits = RiskLimits.current()
    limits.restricted_symbols = services.restricted_symbols()  # type: ignore[attr-defined]
    return LimitsOut(limits).data


class LimitsView(APIView):
    @extend_schema(operation_id="risk_limits_retrieve", responses={200: LimitsOut, **COMMON_ERRORS})
    def get(self, request: Request) -> Response:
        return Response(_limits())

    @extend_schema(
        operation_id="risk_limits_update",
        request=LimitsIn,
        responses={
            200: LimitsOut,
            (400, PROBLEM): problem("Malformed, no reason, or an invalid value (nothing changed)"),
            **BODY_ERRORS,
            **COMMON_ERRORS,
        },
    )
    def patch(self, request: Request) -> Response:
        # Authority first: an API client learns nothing about what a valid change would be.
        if not request.user.has_perm("risk.change_risklimits"):
            raise PermissionDenied("Changing limits needs the risk officers' limits permission.")
        data = LimitsIn(data=request.data)
        data.is_valid(raise_exception=True)
        changes = dict(data.validated_data)
        reason = changes.pop("reason")
        for name, value in changes.items():
            if isinstance(value, Decimal):
                # As typed (the serializer pads to the field's places): the audit trail then reads
                # "2500", as it does for the same change made in the admin.
                changes[name] = Decimal(str(request.data[name]))
        # A missing permission or a RiskActionError is answered by core.problems.exception_handler; the
        # model's own validation (e.g. the daily limit above the total) is a 400 on the fields it names.
        try:
            services.limit_update(acting_user=request.user, changes=changes, reason=reason)
        except DjangoValidationError as exc:
            raise ValidationError(exc.message_dict if hasattr(exc, "error_dict") else exc.messages) from None
        return Response(_limits())
