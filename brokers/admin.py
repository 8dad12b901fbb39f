"""The simulated broker in the admin: prices and market settings editable, the book read-only.

Edits go through ``brokers.simulated`` so that they take the same locks and
stamps as the management commands; orders, positions and the account change
only by trading, so the admin shows them and nothing more.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django import forms
from django.contrib import admin
from django.db.models import Model
from django.http import HttpRequest

from brokers import simulated
from brokers.models import SimAccount, SimAsset, SimOrder, SimPosition, SimPrice, SimState


class ReadOnlyAdmin(admin.ModelAdmin):
    """A list to look at: the venue's book changes only by trading."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False


class SimPriceForm(forms.ModelForm):
    class Meta:
        model = SimPrice
        fields = ["price"]

    def clean_price(self) -> Decimal:
        try:
            return simulated.parse_price(self.cleaned_data["price"])
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from exc


@admin.register(SimPrice)
class SimPriceAdmin(admin.ModelAdmin):
    form = SimPriceForm
    list_display = ["symbol", "price", "updated_at"]
    list_editable = ["price"]
    readonly_fields = ["symbol", "updated_at"]
    fields = ["symbol", "price", "updated_at"]
    search_fields = ["symbol"]

    def get_changelist_form(self, request: HttpRequest, **kwargs: Any) -> type[forms.ModelForm]:
        kwargs.setdefault("form", SimPriceForm)
        return super().get_changelist_form(request, **kwargs)

    def has_add_permission(self, request: HttpRequest) -> bool:
        # A price belongs to an asset the venue knows; the seed migration makes both.
        return False

    def has_delete_permission(self, request: HttpRequest, obj: SimPrice | None = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: SimPrice, form: forms.ModelForm, change: bool) -> None:
        # set_price, not obj.save(): a price set by hand is a fresh last trade,
        # so it is stamped now, exactly as `manage.py sim_set_price` does.
        simulated.set_price(obj.symbol, obj.price)


@admin.register(SimState)
class SimStateAdmin(admin.ModelAdmin):
    list_display = ["seed", "tick_count", "volatility", "max_fill_qty_per_tick", "last_tick_at"]
    fields = ["seed", "volatility", "max_fill_qty_per_tick", "tick_count", "last_tick_at"]
    readonly_fields = ["tick_count", "last_tick_at"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: SimState | None = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: SimState, form: forms.ModelForm, change: bool) -> None:
        if "seed" in form.changed_data:
            simulated.reseed(obj.seed)
        if "volatility" in form.changed_data:
            simulated.set_volatility(obj.volatility)
        if "max_fill_qty_per_tick" in form.changed_data:
            simulated.set_max_fill_qty_per_tick(obj.max_fill_qty_per_tick)


@admin.register(SimAsset)
class SimAssetAdmin(ReadOnlyAdmin):
    list_display = ["symbol", "name", "tradable"]
    list_filter = ["tradable"]
    search_fields = ["symbol", "name"]


@admin.register(SimOrder)
class SimOrderAdmin(ReadOnlyAdmin):
    list_display = [
        "client_order_id",
        "symbol",
        "side",
        "qty",
        "type",
        "time_in_force",
        "limit_price",
        "status",
        "filled_qty",
        "filled_avg_price",
        "submitted_at",
        "updated_at",
    ]
    list_filter = ["status", "side", "type", "symbol"]
    search_fields = ["client_order_id", "broker_order_id", "symbol"]
    date_hierarchy = "submitted_at"


@admin.register(SimPosition)
class SimPositionAdmin(ReadOnlyAdmin):
    list_display = ["symbol", "qty", "avg_entry_price"]
    search_fields = ["symbol"]


@admin.register(SimAccount)
class SimAccountAdmin(ReadOnlyAdmin):
    list_display = ["cash", "last_equity", "last_equity_day"]
