from django.core.management.base import BaseCommand

from backoffice.schedule import setup_periodic_tasks


class Command(BaseCommand):
    help = "Create or update the beat schedule (order sync, reconciliation, risk evaluation) by name."

    def handle(self, *args: object, **options: object) -> None:
        for name in setup_periodic_tasks():
            self.stdout.write(f"scheduled: {name}")
