"""``manage.py sim_tick [--count N]``: step the simulated market by hand (no Celery needed)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from brokers import simulated


class Command(BaseCommand):
    help = "Advance the simulated market N ticks: move prices, then fill marketable orders."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--count", type=int, default=1, help="how many ticks (default 1)")

    def handle(self, *args: Any, **options: Any) -> None:
        count: int = options["count"]
        if count < 1:
            raise CommandError("--count must be at least 1")
        for _ in range(count):
            report = simulated.tick()
            self.stdout.write(
                f"tick {report.tick_number}: {len(report.fills)} fills, "
                f"{len(report.canceled)} canceled, {len(report.expired)} expired"
            )
