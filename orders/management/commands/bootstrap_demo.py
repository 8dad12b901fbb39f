"""First start of the embedded default: a demo strategy, officer and API client, announced once.

The credentials go to a file only the owner can read (var/demo-credentials),
never to the terminal or a log: the printed lines say where they are, and the
curl line reads the token from that file.
"""

from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandParser

from backoffice.config import write_private_file
from orders.accounts import api_client_create, random_password, risk_officer_create

DEMO_STRATEGY = "demo"


class Command(BaseCommand):
    help = "On an empty database in debug mode, create demo users and say once how to use them."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--port", default="8000")

    def handle(self, *args: object, port: str, **options: object) -> None:
        if not settings.DEBUG:
            self.stdout.write("bootstrap_demo: not in a non-debug deployment; nothing created")
            return
        if get_user_model().objects.exists():
            return  # not the first start: print nothing, create nothing
        password = random_password()
        risk_officer_create(username="officer", password=password)
        _, token = api_client_create(name="demo-client", strategy_slugs=[DEMO_STRATEGY])
        var_dir = Path(settings.VAR_DIR)
        credentials, token_file = var_dir / "demo-credentials", var_dir / "demo-api-token"
        for path, content in ((credentials, f"admin user: officer\nadmin password: {password}\napi token: {token}\n"),
                              (token_file, token)):
            write_private_file(path, content)
        base = f"http://127.0.0.1:{port}"
        self.stdout.write(
            "\n".join(
                [
                    "",
                    "First start: demo users created.",
                    f"  Admin:      {base}/admin/  (user 'officer'; password in {credentials}, readable only by you)",
                    f"  API client: demo-client, strategy '{DEMO_STRATEGY}'; its token is in {token_file}",
                    "  Submit an order:",
                    f'    curl -s -X POST {base}/v1/orders -H "Authorization: Token $(cat {token_file})" '
                    "-H 'Content-Type: application/json' "
                    f"""-d '{{"strategy": "{DEMO_STRATEGY}", "symbol": "AAPL", "side": "buy", """
                    """"qty": "1", "type": "market"}'""",
                    "",
                ]
            )
        )
