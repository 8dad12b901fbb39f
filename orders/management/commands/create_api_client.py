from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.text import slugify

from orders.accounts import api_client_create


class Command(BaseCommand):
    help = "Create or update an API client granted the given strategies; prints its token as the last line."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name")
        parser.add_argument("--strategy", action="append", required=True, dest="strategies", metavar="SLUG")

    def handle(self, *args: object, name: str, strategies: list[str], **options: object) -> None:
        for slug in strategies:
            if slugify(slug) != slug:
                raise CommandError(f"{slug!r} is not a valid strategy slug (lowercase letters, digits, hyphens)")
        user, token = api_client_create(name=name, strategy_slugs=strategies)
        self.stdout.write(f"API client {user.username} may trade: {', '.join(strategies)}")
        self.stdout.write(token)
