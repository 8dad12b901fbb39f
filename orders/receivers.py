"""The order layer's answer to risk's signals."""

from typing import Any

from django.dispatch import receiver

from risk.signals import kill_switch_activated


@receiver(kill_switch_activated)
def cancel_working_orders(sender: Any, *, strategy_id: int | None, actor_label: str, **kwargs: Any) -> None:
    from orders.services import orders_cancel_for_kill_switch

    orders_cancel_for_kill_switch(strategy_id=strategy_id, label=actor_label)
