"""The few raw statements of the order-entry hot path share this: what the ORM would INSERT for a model instance.

Raw SQL is used only where one statement replaces several on the path every
order takes (issue 19); the values still come from the model's own fields
(defaults, ``pre_save``, ``get_db_prep_save``), so a new column or default is
picked up without touching the statement.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any, TypeVar

from django.db import DEFAULT_DB_ALIAS, connection, models
from django.db.backends.utils import CursorDebugWrapper, CursorWrapper

ModelT = TypeVar("ModelT", bound=models.Model)


def insert_values(obj: models.Model) -> tuple[str, str, list[Any]]:
    """(quoted table, quoted column list, database values) of ``obj``'s INSERT, its serial primary key left out."""
    meta = obj._meta
    fields = [f for f in meta.concrete_fields if not (f.primary_key and isinstance(f, models.AutoField))]
    quote = connection.ops.quote_name
    columns = ", ".join(quote(str(f.column)) for f in fields)
    values = [f.get_db_prep_save(f.pre_save(obj, add=True), connection) for f in fields]
    return quote(meta.db_table), columns, values


def placeholders(values: list[Any]) -> str:
    return ", ".join(["%s"] * len(values))


def mark_saved(obj: models.Model) -> None:
    """What Model.save() leaves on an instance after its INSERT: no longer adding, bound to the database."""
    obj._state.adding = False
    obj._state.db = connection.alias


def instance_from_json(model: type[ModelT], text: str | None) -> ModelT | None:
    """A model instance from PostgreSQL's ``row_to_json`` text, each column through its field's to_python.

    How a raw statement returns whole rows of several tables at once (Decimal
    stays Decimal, datetimes come back aware); None for no row.
    """
    if text is None:
        return None
    row = json.loads(text, parse_float=Decimal)
    fields = model._meta.concrete_fields
    return model.from_db(DEFAULT_DB_ALIAS, [f.attname for f in fields], [f.to_python(row[f.column]) for f in fields])


@contextmanager
def prepared_cursor() -> Iterator[Any]:
    """A cursor whose statements PostgreSQL parses and plans once per connection, then only executes (issue 19).

    For the few fixed statements every order runs (a long one such as the
    snapshot spent more time parsed and planned than executed). Parameters
    are bound server-side, so each ``%s`` gets the type of its Python value;
    psycopg keeps one prepared statement per text and parameter types on the
    connection. The cursor is wrapped as ``connection.cursor()`` is (query
    logging, execute wrappers), and a statement must return the same column
    types whatever the schema (no ``SELECT *``: a prepared ``SELECT *`` fails
    once a migration changes the table, until the connection is renewed).
    Needs a direct connection or a session-mode pooler (not transaction mode).
    Elsewhere (SQLite) it is ``connection.cursor()``.
    """
    if connection.vendor != "postgresql":
        with connection.cursor() as cursor:
            yield cursor
        return
    connection.ensure_connection()
    connection.validate_thread_sharing()
    if connection.connection.prepare_threshold is None:
        # Django turns psycopg's preparing off; an explicit prepare=True needs it on. The
        # threshold only counts for server-binding cursors, and these are the only ones.
        connection.connection.prepare_threshold = _ONLY_WHEN_ASKED
    raw = _prepared_cursor_class()(connection.connection)
    wrapped = _PreparedDebugWrapper(raw, connection) if connection.queries_logged else connection.make_cursor(raw)
    with wrapped as cursor:
        yield cursor


_ONLY_WHEN_ASKED = 2**31 - 1


class _PreparedDebugWrapper(CursorDebugWrapper):
    """Query logging (DEBUG, CaptureQueriesContext) of a prepared statement: its text, placeholders as written.

    Django logs the text psycopg last sent, and a prepared statement's execution sends none.
    """

    def execute(self, sql: Any, params: Any = None) -> Any:
        with self.debug_sql(sql, params):
            return CursorWrapper.execute(self, sql, params)


@functools.cache
def _prepared_cursor_class() -> type:
    import psycopg  # PostgreSQL only

    class PreparedCursor(psycopg.Cursor):
        """psycopg's server-binding cursor, preparing every statement it executes."""

        def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Any:
            kwargs.setdefault("prepare", True)
            return super().execute(query, params, **kwargs)

    return PreparedCursor


_LITERAL = re.compile(r"[a-z_]+")


def literals(values: Iterable[str]) -> str:
    """Code constants (states such as ``submitted``) written into a statement as SQL string literals.

    A prepared statement plans once for every execution, so a partial index
    whose predicate lists the working states is usable only if the statement
    lists them as literals, not as parameters. Only lower-case names are
    accepted: nothing a client sent ever gets here.
    """
    out = []
    for value in sorted(str(v) for v in values):
        if not _LITERAL.fullmatch(value):
            raise ValueError(f"not a state name: {value!r}")
        out.append(f"'{value}'")
    return ", ".join(out)
