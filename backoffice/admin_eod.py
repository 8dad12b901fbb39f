"""End-of-day reports in the admin: the list, each day's table, and its CSV."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from backoffice.admin_tools import BackofficeModelAdmin, ReadOnlyAdminMixin, timestamp
from backoffice.dashboard import signed_money
from backoffice.eod import report_csv
from backoffice.models import EndOfDayReport


@admin.register(EndOfDayReport)
class EndOfDayReportAdmin(ReadOnlyAdminMixin, BackofficeModelAdmin):
    list_display = ["day", "created", "emailed", "realised", "csv_link"]
    fields = ["day", "created", "emailed", "table", "csv_link"]
    readonly_fields = fields
    actions = None

    def get_urls(self) -> list[Any]:
        view = self.admin_site.admin_view(self.csv_view)
        return [path("<int:pk>/csv/", view, name="backoffice_endofdayreport_csv"), *super().get_urls()]

    def csv_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied("you may not view end-of-day reports")
        report = get_object_or_404(EndOfDayReport, pk=pk)
        response = HttpResponse(report_csv(report), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="eod-{report.trading_day:%Y-%m-%d}.csv"'
        return response

    @admin.display(description="trading day", ordering="trading_day")
    def day(self, report: EndOfDayReport) -> str:
        return f"{report.trading_day:%Y-%m-%d (%a)}"

    @admin.display(description="produced (UTC)")
    def created(self, report: EndOfDayReport) -> str:
        return timestamp(report.created_at)

    @admin.display(description="e-mailed (UTC)")
    def emailed(self, report: EndOfDayReport) -> str:
        if report.emailed_at is None:
            return "pending"
        return f"{timestamp(report.emailed_at)} to {', '.join(report.emailed_to)}"

    @admin.display(description="realised P&L (account)")
    def realised(self, report: EndOfDayReport) -> str:
        account = report.rows[-1] if report.rows else None
        return signed_money(Decimal(account["realised_pnl"])) if account else "—"

    @admin.display(description="CSV")
    def csv_link(self, report: EndOfDayReport) -> str:
        url = reverse("admin:backoffice_endofdayreport_csv", args=[report.pk])
        return format_html('<a class="bo-export" href="{}">Download CSV</a>', url)

    @admin.display(description="per strategy")
    def table(self, report: EndOfDayReport) -> str:
        def cells(row: dict[str, Any]) -> tuple[Any, ...]:
            denials = ", ".join(f"{code} {n}" for code, n in row["denials"].items()) or "—"
            return (row["strategy"], signed_money(Decimal(row["realised_pnl"])), row["orders"], row["fills"],
                    denials, row["limit_breaches"], row["breaks"], row["kill_switch_events"], row["breaker_events"])

        body = format_html_join(
            "", "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>"
            "<td>{}</td></tr>", (cells(row) for row in report.rows),
        )
        return format_html(
            '<table class="bo-table bo-eod"><thead><tr><th>Strategy</th><th>Realised P&amp;L</th><th>Orders</th>'
            "<th>Fills</th><th>Denials by code</th><th>Limit breaches</th><th>Breaks</th>"
            "<th>Kill-switch events</th><th>Breaker events</th></tr></thead><tbody>{}</tbody></table>", body,
        )
