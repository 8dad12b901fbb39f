"""Building blocks the back office's ModelAdmins share.

* ``ObjectAction``: a button on an object's page that leads to a confirmation
  page with a required reason, then calls one service. The permission is
  checked by the view on GET *and* POST (a hidden button is not a control),
  and again by the service itself.
* ``BackofficeModelAdmin``: refuses a forged changelist action with 403 (Django
  would silently ignore an action the user may not run), never computes
  filter facets, and shows object actions and the audit trail on change pages.
* ``NoCountPaginator``: pages through a large table without ``COUNT(*)``.
* ``InputFilter``: a typed-in filter for columns whose distinct values would
  need a scan of the table to list.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.options import ShowFacets
from django.contrib.admin.utils import unquote
from django.contrib.admin.views.main import PAGE_VAR, ChangeList
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db.models import Model, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.functional import cached_property

from core.exceptions import BusinessRefusal

# Refusals for a business reason: shown on the confirmation page, nothing changed.
# Every service refusal is a core BusinessRefusal; Django's ValidationError is
# the models' own field validation (full_clean inside limit_update).
REFUSALS: tuple[type[Exception], ...] = (BusinessRefusal, ValidationError)

Check = Callable[[Any, Any], bool]


def always(user: Any, obj: Any) -> bool:
    return True


def has_perm(perm: str) -> Check:
    def check(user: Any, obj: Any) -> bool:
        return bool(user.is_active and user.has_perm(perm))

    check.__name__ = f"has_perm({perm})"
    return check


def timestamp(value: dt.datetime | None) -> str:
    """Seconds matter in a back office: 2026-11-21 14:02:11 (UTC), not "Nov. 21, 2026, 2:02 p.m."."""
    return "—" if value is None else f"{value.astimezone(dt.UTC):%Y-%m-%d %H:%M:%S}"


def timestamp_column(field: str, description: str) -> Callable[[Any], str]:
    """A list/readonly column showing ``field`` as a UTC timestamp to the second."""

    @admin.display(description=description)
    def column(obj: Any) -> str:
        return timestamp(getattr(obj, field))

    column.__name__ = f"{field}_utc"
    return column


def quantity(value: Decimal | None) -> str:
    """1, 2.5, 0.125: a decimal without the trailing zeros of its column's scale."""
    return "—" if value is None else format(value.normalize(), "f")


def refusal_message(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return " ".join(exc.messages)
    return str(exc)


# --- Object actions ----------------------------------------------------------


class ReasonForm(forms.Form):
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60, "required": True, "autofocus": True}),
        max_length=2000,
        error_messages={"required": "A reason is required: it is written to the audit trail with your name."},
    )

    def __init__(self, *args: Any, label: str = "Reason", help_text: str = "", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["reason"].label = label
        self.fields["reason"].help_text = help_text


@dataclass(frozen=True)
class ObjectAction:
    """One service call behind a confirmation page.

    ``allowed(user, obj)`` is the authority check (403 when false, GET or
    POST); ``available(user, obj)`` says whether the object's state offers the
    action now (the button is shown; a stale POST is refused by the service).
    ``run(request, obj, reason)`` calls the service and returns the message
    shown after it.
    """

    name: str
    label: str
    run: Callable[[HttpRequest, Any, str], str]
    allowed: Check
    available: Check = always
    style: str = "default"  # "danger" for the controls that stop or restart trading
    explanation: str | Callable[[Any, Any], str] = ""
    submit_label: str = ""
    reason_label: str = "Reason"
    reason_help: str = "Written to the audit trail with your name and the time."
    label_for: Callable[[Any, Any], str] | None = None  # a label that depends on state (e.g. four-eyes)
    back_to_list: bool = False  # the action removes the object: come back to the list, not to its page
    # An action that needs more than a reason (a ledger adjustment's qty and
    # price): a ReasonForm subclass built as form_class(data, obj=..., **kwargs),
    # and run_with_form(request, obj, cleaned_data) called instead of run.
    form_class: type[ReasonForm] | None = None
    run_with_form: Callable[[HttpRequest, Any, dict[str, Any]], str] | None = None

    def label_of(self, user: Any, obj: Any) -> str:
        return self.label_for(user, obj) if self.label_for else self.label

    def explanation_of(self, user: Any, obj: Any) -> str:
        return self.explanation(user, obj) if callable(self.explanation) else self.explanation


class BackofficeModelAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    show_facets = ShowFacets.NEVER
    change_form_template = "admin/backoffice/change_form.html"
    object_actions: Sequence[ObjectAction] = ()

    # --- forged changelist actions -------------------------------------------

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        if request.method == "POST" and "index" in request.POST and "_save" not in request.POST:
            name = request.POST.get("action", "")
            if name and name not in self.get_actions(request) and name in self._get_base_actions_names():
                # An action this user may not run: refuse loudly rather than render the list again.
                raise PermissionDenied(f"you may not run {name}")
        return super().changelist_view(request, extra_context)

    def _get_base_actions_names(self) -> set[str]:
        return {name for _, name, _ in self._get_base_actions()}

    # --- object actions ------------------------------------------------------

    def get_object_actions(self) -> Sequence[ObjectAction]:
        return self.object_actions

    def _url_name(self, suffix: str) -> str:
        return f"{self.opts.app_label}_{self.opts.model_name}_{suffix.replace('-', '_')}"

    def get_urls(self) -> list[Any]:
        # One explicit route per action, ahead of the stock ones: a generic
        # "<id>/<action>/" would also swallow "<id>/change/" and "<id>/delete/".
        urls = [
            path(
                f"<path:object_id>/{action.name}/",
                self.admin_site.admin_view(self.object_action_view),
                {"action_name": action.name},
                name=self._url_name(action.name),
            )
            for action in self.get_object_actions()
        ]
        return urls + super().get_urls()

    def object_action_url(self, obj: Model, action_name: str) -> str:
        return reverse(f"admin:{self._url_name(action_name)}", args=[obj.pk], current_app=self.admin_site.name)

    def object_buttons(self, request: HttpRequest, obj: Model) -> list[dict[str, str]]:
        """The actions this user may run on ``obj`` in its current state, for the change page."""
        return [
            {
                "label": action.label_of(request.user, obj),
                "url": self.object_action_url(obj, action.name),
                "style": action.style,
            }
            for action in self.get_object_actions()
            if action.allowed(request.user, obj) and action.available(request.user, obj)
        ]

    def object_action_view(self, request: HttpRequest, object_id: str, action_name: str) -> HttpResponse:
        action = next(a for a in self.get_object_actions() if a.name == action_name)
        obj = self.get_object(request, unquote(object_id))
        if obj is None:
            raise Http404(f"{self.opts.verbose_name} {object_id} does not exist")
        if not self.has_view_or_change_permission(request, obj) or not action.allowed(request.user, obj):
            raise PermissionDenied(f"you may not {action.label.lower()}")
        change_url = reverse(f"admin:{self._url_name('change')}", args=[obj.pk], current_app=self.admin_site.name)
        form_kwargs: dict[str, Any] = {"label": action.reason_label, "help_text": action.reason_help}
        form_class = action.form_class or ReasonForm
        if action.form_class is not None:
            form_kwargs["obj"] = obj
        if request.method == "POST":
            form = form_class(request.POST, **form_kwargs)
            if form.is_valid():
                try:
                    if action.run_with_form is not None:
                        message = action.run_with_form(request, obj, form.cleaned_data)
                    else:
                        message = action.run(request, obj, form.cleaned_data["reason"])
                except REFUSALS as exc:
                    form.add_error(None, refusal_message(exc))
                else:
                    messages.success(request, message)
                    if action.back_to_list:
                        return HttpResponseRedirect(
                            reverse(f"admin:{self._url_name('changelist')}", current_app=self.admin_site.name)
                        )
                    return HttpResponseRedirect(change_url)
        else:
            form = form_class(**form_kwargs)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "object": obj,
            "title": f"{action.label_of(request.user, obj)}: {obj}",
            "action": action,
            "action_label": action.label_of(request.user, obj),
            "explanation": action.explanation_of(request.user, obj),
            "available": action.available(request.user, obj),
            "submit_label": action.submit_label or action.label_of(request.user, obj),
            "form": form,
            "change_url": change_url,
        }
        return TemplateResponse(request, "admin/backoffice/confirm_action.html", context)

    # --- the change page -----------------------------------------------------

    def audit_rows(self, obj: Model) -> list[dict[str, Any]] | None:
        """The audit trail shown under the form ({"event", "changes"} dicts), or None for no trail."""
        return None

    def audit_trail_url(self, obj: Model) -> str | None:
        return None

    def state_summary(self, request: HttpRequest, obj: Model) -> str:
        """Rendered HTML shown above the form: what state the object is in, in words."""
        return ""

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        extra_context = dict(extra_context or {})
        obj = self.get_object(request, unquote(object_id))
        if obj is not None:
            extra_context.update(
                object_buttons=self.object_buttons(request, obj),
                state_summary=self.state_summary(request, obj),
                audit_rows=self.audit_rows(obj),
                audit_trail_url=self.audit_trail_url(obj),
            )
        return super().change_view(request, object_id, form_url, extra_context)


class ReadOnlyAdminMixin:
    """Nothing is added, changed or deleted by hand, by anyone (superusers included)."""

    def has_add_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False


class SingletonAdminMixin:
    """A one-row table (limits, the breaker): the list opens the row."""

    def get_singleton(self) -> Model:
        raise NotImplementedError

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        if not self.has_view_or_change_permission(request):  # type: ignore[attr-defined]
            raise PermissionDenied
        obj = self.get_singleton()
        opts = obj._meta
        return HttpResponseRedirect(reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk]))

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False


# --- Large tables --------------------------------------------------------------


# An OFFSET every backend takes (PostgreSQL's and SQLite's are 64-bit), far beyond any table.
MAX_OFFSET = 2**62


class NoCountPaginator(Paginator):
    """Pages without counting the table.

    ``count`` is the rows before this page plus the rows of this page read
    with one extra (``LIMIT per_page + 1`` on the primary key, which the
    ordering index answers), so the change list knows whether a next page
    exists and never issues ``COUNT(*)`` over a million orders.
    """

    def __init__(self, object_list: Any, per_page: int, *, page_number: int = 1, **kwargs: Any) -> None:
        super().__init__(object_list, per_page, **kwargs)
        self.page_number = max(1, page_number)

    @cached_property
    def count(self) -> int:  # type: ignore[override]
        start = (self.page_number - 1) * self.per_page
        if start > MAX_OFFSET:
            # ?p=99999999999999999999999: no database takes that OFFSET (a
            # 64-bit integer), and no table has that many rows. Counting it as
            # empty makes the page out of range, which the admin answers the
            # usual way: back to the first page (?e=1), no error.
            return start
        return start + len(self.object_list.values_list("pk", flat=True)[start : start + self.per_page + 1])


class NoCountChangeList(ChangeList):
    """Previous/next links instead of numbered pages: the last page number is unknown by design."""

    @property
    def has_previous_page(self) -> bool:
        return self.page_num > 1

    @property
    def has_next_page(self) -> bool:
        return self.result_count > self.page_num * self.list_per_page

    @property
    def previous_page_url(self) -> str:
        return self.get_query_string({PAGE_VAR: self.page_num - 1})

    @property
    def next_page_url(self) -> str:
        return self.get_query_string({PAGE_VAR: self.page_num + 1})

    @property
    def first_row(self) -> int:
        return (self.page_num - 1) * self.list_per_page + 1 if self.result_count else 0

    @property
    def last_row(self) -> int:
        return min(self.result_count, self.page_num * self.list_per_page)


class LargeTableAdminMixin:
    """For tables that grow without bound: no total counts, no facet counts, no "show all"."""

    show_full_result_count = False
    list_max_show_all = 0
    actions_selection_counter = False  # "select all N" would need the total
    change_list_template = "admin/backoffice/large_change_list.html"

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return NoCountChangeList

    def get_paginator(
        self, request: HttpRequest, queryset: QuerySet[Any], per_page: int, orphans: int = 0,
        allow_empty_first_page: bool = True,
    ) -> Paginator:
        try:
            page_number = int(request.GET.get("p", 1))
        except ValueError:
            page_number = 1
        return NoCountPaginator(
            queryset, per_page, page_number=page_number, orphans=0, allow_empty_first_page=allow_empty_first_page
        )


class InputFilter(admin.SimpleListFilter):
    """A text box in the filter sidebar; subclasses set title, parameter_name and ``queryset``."""

    template = "admin/backoffice/input_filter.html"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("", "")]  # never listed: typed in

    def choices(self, changelist: Any) -> Any:
        # One "choice" that carries what the template needs: the other
        # parameters to keep as hidden fields, and the link that clears this one.
        keep = [
            (name, value)
            for name, values in changelist.filter_params.items()
            if name not in {self.parameter_name, PAGE_VAR}
            for value in values
        ]
        yield {
            "value": self.value() or "",
            "others": keep,
            "clear_query_string": changelist.get_query_string(remove=[self.parameter_name]),
        }
