"""What risk tells the layers above it, without importing them.

``kill_switch_activated`` is sent after the activation has committed; the
order layer subscribes and cancels working orders in scope at the broker.
"""

from django.dispatch import Signal

# kwargs: strategy_id (None for the global switch), actor_label
kill_switch_activated = Signal()
