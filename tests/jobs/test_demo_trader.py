"""The demo trader submits plausible orders through the real /v1 API."""

import io

import pytest
from django.core.management import call_command
from rest_framework.authtoken.models import Token

from orders.models import Order

pytestmark = pytest.mark.django_db(transaction=True)


def test_it_submits_orders_through_the_api_that_the_pipeline_accepts(live_server, alice, market):
    token, _ = Token.objects.get_or_create(user=alice)
    out = io.StringIO()

    call_command("demo_trader", strategy="alpha", token=token.key, url=live_server.url, interval=0, count=4,
                 seed=7, stdout=out)

    assert "demo trader sent 4 orders" in out.getvalue()
    assert Order.objects.filter(strategy__slug="alpha").count() == 4
    assert set(Order.objects.values_list("status", flat=True)) <= {"submitted", "denied"}
    assert Order.objects.filter(status="submitted").exists()


def _dead_url() -> str:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"  # closed again: nothing listens there


def test_without_url_it_finds_the_instance_make_run_wrote_to_var(live_server, alice, market, settings, tmp_path,
                                                                monkeypatch):
    token, _ = Token.objects.get_or_create(user=alice)
    settings.VAR_DIR = tmp_path
    (tmp_path / "run-url").write_text(live_server.url + "\n")
    monkeypatch.delenv("PORT", raising=False)
    out = io.StringIO()

    call_command("demo_trader", strategy="alpha", token=token.key, interval=0, count=2, seed=3, stdout=out)

    assert "demo trader sent 2 orders" in out.getvalue()
    assert Order.objects.filter(strategy__slug="alpha").count() == 2


def test_port_in_the_environment_wins_over_a_stale_address(live_server, alice, market, settings, tmp_path,
                                                           monkeypatch):
    token, _ = Token.objects.get_or_create(user=alice)
    settings.VAR_DIR = tmp_path
    (tmp_path / "run-url").write_text(_dead_url())
    monkeypatch.setenv("PORT", str(live_server.thread.port))

    call_command("demo_trader", strategy="alpha", token=token.key, interval=0, count=1, stdout=io.StringIO())

    assert Order.objects.filter(strategy__slug="alpha").count() == 1
