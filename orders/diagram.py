"""The order state diagram, drawn from the one transition table (Mermaid)."""

from orders.states import CORRECTIONS, TERMINAL, TRANSITIONS, OrderStatus


def mermaid() -> str:
    lines = [
        "stateDiagram-v2",
        f"    [*] --> {OrderStatus.PENDING}: passed risk check",
        f"    [*] --> {OrderStatus.DENIED}: failed risk check",
    ]
    for source, targets in TRANSITIONS.items():
        for target in sorted(targets):
            lines.append(f"    {source} --> {target}")
    # Only for an order closed as never received, and only by the late-truth adoption.
    for source, targets in CORRECTIONS.items():
        for target in sorted(targets):
            lines.append(f"    {source} --> {target}: late truth")
    for state in sorted(TERMINAL):
        lines.append(f"    {state} --> [*]")
    return "\n".join(lines)
