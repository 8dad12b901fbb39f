"""Fixtures shared by the /v1 contract, authorisation and deployment-safety tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.core.signals import request_finished, request_started
from django.db import close_old_connections


@pytest.fixture
def wsgi_app_in_test_transaction() -> Iterator[object]:
    """The project's real WSGI application, callable inside the test's transaction.

    Django's WSGI handler closes "old" connections at the start and end of every
    request; inside a test's atomic block that would mark the transaction for
    rollback. Django's own test client disconnects the same receiver for the
    same reason, so this does exactly what ``django.test.Client`` does and
    nothing more.
    """
    from backoffice.wsgi import application

    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield application
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)
