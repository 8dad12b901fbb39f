"""The order state diagram, drawn from the one transition table (Mermaid)."""

from orders.states import TERMINAL, TRANSITIONS, OrderStatus


def mermaid() -> str:
    lines = [
        "stateDiagram-v2",
        f"    [*] --> {OrderStatus.PENDING}: passed risk check",
        f"    [*] --> {OrderStatus.DENIED}: failed risk check",
    ]
    for source, targets in TRANSITIONS.items():
        for target in sorted(targets):
            lines.append(f"    {source} --> {target}")
    for state in sorted(TERMINAL):
        lines.append(f"    {state} --> [*]")
    return "\n".join(lines)
