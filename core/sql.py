"""The few raw statements of the order-entry hot path share this: what the ORM would INSERT for a model instance.

Raw SQL is used only where one statement replaces several on the path every
order takes (issue 19); the values still come from the model's own fields
(defaults, ``pre_save``, ``get_db_prep_save``), so a new column or default is
picked up without touching the statement.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any, TypeVar

from django.db import DEFAULT_DB_ALIAS, connection, models

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
