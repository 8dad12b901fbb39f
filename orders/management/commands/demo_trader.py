"""A demo strategy that trades through the real /v1 API, so a new user sees the system live."""

from __future__ import annotations

import json
import os
import random
import time
import urllib.error
import urllib.request
from decimal import Decimal
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

SYMBOLS = ["AAPL", "MSFT", "NVDA", "AMZN", "GOOGL", "META", "AMD", "SPY", "QQQ", "TSLA"]


class Command(BaseCommand):
    help = "Submit a steady stream of plausible orders through the /v1 API (token from create_api_client)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--strategy", required=True)
        parser.add_argument(
            "--token",
            help="API token (default: the DEMO_TRADER_TOKEN environment variable, else var/demo-api-token)",
        )
        parser.add_argument(
            "--url",
            help="base URL of the back office (default: http://127.0.0.1:$PORT if PORT is set, else the address "
            "`make run` wrote to var/run-url, else http://127.0.0.1:8000)",
        )
        parser.add_argument("--interval", type=float, default=2.0, help="seconds between orders")
        parser.add_argument("--count", type=int, default=0, help="stop after this many orders (0: run until Ctrl-C)")
        parser.add_argument("--seed", type=int, default=None)

    def handle(self, *args: object, **options: Any) -> None:
        token = options["token"] or os.environ.get("DEMO_TRADER_TOKEN", "") or _demo_token()
        if not token:
            raise CommandError(
                "no API token: give --token or set DEMO_TRADER_TOKEN (create_api_client prints one; "
                "`make run` keeps the demo client's in var/demo-api-token)"
            )
        base, source = _base_url(options["url"])
        self.base, self.source = base, source
        rng = random.Random(options["seed"])
        held: dict[str, Decimal] = {}
        sent = 0
        try:
            while not options["count"] or sent < options["count"]:
                body = self._next_order(rng, str(options["strategy"]), held)
                status, answer = self._post(f"{self.base}/v1/orders", token, body)
                sent += 1
                outcome = answer.get("status") or answer.get("title")
                if status in (200, 201) and body["side"] == "buy":
                    held[body["symbol"]] = held.get(body["symbol"], Decimal(0)) + Decimal(body["qty"])
                elif status in (200, 201):
                    held[body["symbol"]] = held.get(body["symbol"], Decimal(0)) - Decimal(body["qty"])
                codes = ",".join(v["code"] for v in answer.get("violations", []))
                self.stdout.write(f"{body['side']:4} {body['qty']:>3} {body['symbol']:5} -> {status} {outcome} {codes}")
                if not options["count"] or sent < options["count"]:
                    time.sleep(float(options["interval"]))
        except KeyboardInterrupt:
            pass
        self.stdout.write(f"demo trader sent {sent} orders")

    @staticmethod
    def _next_order(rng: random.Random, strategy: str, held: dict[str, Decimal]) -> dict[str, str]:
        # Mostly buys of a few shares; sells only of what was bought, so positions stay plausible.
        sellable = [s for s, q in held.items() if q > 0]
        if sellable and rng.random() < 0.35:
            symbol = rng.choice(sellable)
            qty = min(held[symbol], Decimal(rng.randint(1, 5)))
            return {"strategy": strategy, "symbol": symbol, "side": "sell", "qty": str(qty), "type": "market"}
        return {"strategy": strategy, "symbol": rng.choice(SYMBOLS), "side": "buy",
                "qty": str(rng.randint(1, 10)), "type": "market"}

    def _post(self, url: str, token: str, body: dict[str, str]) -> tuple[int, dict]:
        request = urllib.request.Request(
            url, data=json.dumps(body).encode(), method="POST",
            headers={"Authorization": f"Token {token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, _json(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, _json(exc.read())
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise CommandError(
                f"cannot reach the back office at {self.base} ({self.source}): {reason}. "
                "Is `make run` running? Start it, or give --url"
            ) from None


def _base_url(option: str | None) -> tuple[str, str]:
    """The address of the running back office, and where it came from (for the error message)."""
    if option:
        return option.rstrip("/"), "from --url"
    port = os.environ.get("PORT", "").strip()
    if port:
        return f"http://127.0.0.1:{port}", "from PORT"
    run_url = Path(settings.VAR_DIR) / "run-url"
    if run_url.exists() and (written := run_url.read_text().strip()):
        return written.rstrip("/"), "from var/run-url, written by `make run`"
    return "http://127.0.0.1:8000", "the default; `make run` writes its address to var/run-url and none is there"


def _demo_token() -> str:
    path = Path(settings.VAR_DIR) / "demo-api-token"
    return path.read_text().strip() if path.exists() else ""


def _json(raw: bytes) -> dict:
    try:
        answer = json.loads(raw or b"{}")
    except ValueError:
        return {"title": "not a JSON answer"}
    return answer if isinstance(answer, dict) else {"title": "unexpected answer"}
