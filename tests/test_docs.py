"""The docs stay true: the state diagram in docs/architecture.md is the one the table draws."""

from pathlib import Path

from orders.diagram import mermaid

DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_the_architecture_doc_shows_the_state_diagram_generated_from_the_table():
    assert mermaid() in (DOCS / "architecture.md").read_text()
