from django.core.management.base import BaseCommand

from orders.diagram import mermaid


class Command(BaseCommand):
    help = "Print the order state diagram (Mermaid) generated from orders.states.TRANSITIONS."

    def handle(self, *args: object, **options: object) -> None:
        self.stdout.write(mermaid())
