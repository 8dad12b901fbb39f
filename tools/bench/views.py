"""The baseline of the order-entry benchmark: authenticate like POST /v1/orders, insert one row.

It is a DRF view with the project's defaults, exactly as ``orders.api``'s
views are: token authentication (one query for the token and its user),
``IsAuthenticated``, the same bounded JSON parser and JSON renderer. Then one
INSERT, in autocommit, into ``bench_baseline_insert``, a table the benchmark
creates with raw SQL (primary key only; no model, nothing in the product's
apps), and a 201. Nothing else: no validation, no risk check, no broker.
"""

from __future__ import annotations

import json

from django.db import connection
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

TABLE = "bench_baseline_insert"
CREATE_TABLE = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    id bigserial PRIMARY KEY,
    user_id integer NOT NULL,
    body jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
)
"""


class BaselineInsert(APIView):
    def post(self, request: Request) -> Response:
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {TABLE} (user_id, body) VALUES (%s, %s) RETURNING id",
                [request.user.pk, json.dumps(request.data)],
            )
            (row_id,) = cursor.fetchone()
        return Response({"id": row_id}, status=201)
