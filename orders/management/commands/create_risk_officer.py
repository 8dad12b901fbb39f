import getpass
import os

from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from orders.accounts import risk_officer_create


class Command(BaseCommand):
    help = (
        "Create a staff user in the Risk officers group (password prompted, or RISK_OFFICER_PASSWORD with --noinput)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--email", default="")
        parser.add_argument("--noinput", "--no-input", action="store_false", dest="interactive")

    def handle(self, *args: object, username: str, email: str, interactive: bool, **options: object) -> None:
        if interactive:
            try:
                password = getpass.getpass("Password: ")
                again = getpass.getpass("Password (again): ")
            except EOFError:  # no terminal, or Ctrl-D at the prompt
                raise CommandError(
                    "no password was typed; in a script use --noinput with RISK_OFFICER_PASSWORD"
                ) from None
            if password != again:
                raise CommandError("The passwords do not match.")
        else:
            password = os.environ.get("RISK_OFFICER_PASSWORD", "")
            if not password:
                raise CommandError("--noinput needs the password in RISK_OFFICER_PASSWORD")
        try:
            validate_password(password)
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from None
        risk_officer_create(username=username, password=password, email=email)
        self.stdout.write(f"Risk officer {username} created; log in at /admin/")
