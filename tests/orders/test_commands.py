"""The operator commands: API clients, risk officers, the first start of the embedded default."""

from __future__ import annotations

import io

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from rest_framework.authtoken.models import Token

from risk.models import Mode, Strategy

pytestmark = pytest.mark.django_db


def run(*args: str, **options: object) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out, **options)
    return out.getvalue()


def test_create_api_client_grants_strategies_creates_missing_ones_in_paper_and_prints_the_token_last():
    output = run("create_api_client", "quant-bot", "--strategy", "momentum", "--strategy", "meanrev")

    user = get_user_model().objects.get(username="quant-bot")
    assert output.strip().splitlines()[-1] == Token.objects.get(user=user).key
    assert set(user.strategies.values_list("slug", flat=True)) == {"momentum", "meanrev"}
    assert Strategy.objects.get(slug="momentum").mode == Mode.PAPER
    assert not user.is_staff and not user.has_usable_password()


def test_create_api_client_again_updates_the_grants_and_keeps_the_token():
    first = run("create_api_client", "quant-bot", "--strategy", "momentum").strip().splitlines()[-1]
    second = run("create_api_client", "quant-bot", "--strategy", "carry").strip().splitlines()[-1]

    assert first == second
    assert set(get_user_model().objects.get(username="quant-bot").strategies.values_list("slug", flat=True)) == {
        "momentum", "carry"}


def test_create_api_client_refuses_a_bad_slug():
    with pytest.raises(CommandError):
        run("create_api_client", "x", "--strategy", "Not A Slug")


def test_create_risk_officer_without_input_takes_the_password_from_the_environment(monkeypatch):
    monkeypatch.setenv("RISK_OFFICER_PASSWORD", "a-long-enough-passphrase-42")

    run("create_risk_officer", "rita", "--noinput")

    rita = get_user_model().objects.get(username="rita")
    assert rita.is_staff and rita.check_password("a-long-enough-passphrase-42")
    assert rita.groups.filter(name="Risk officers").exists()
    assert rita.has_perm("risk.reset_killswitch")


def test_create_risk_officer_without_input_or_password_fails_clearly(monkeypatch):
    monkeypatch.delenv("RISK_OFFICER_PASSWORD", raising=False)
    with pytest.raises(CommandError, match="RISK_OFFICER_PASSWORD"):
        run("create_risk_officer", "rita", "--noinput")


def test_create_risk_officer_at_an_empty_input_names_the_scripted_way_instead_of_a_traceback(monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO(""))  # no terminal and nothing typed: getpass reads EOF
    monkeypatch.setattr("getpass.getpass", lambda prompt="": (_ for _ in ()).throw(EOFError))
    with pytest.raises(CommandError, match="--noinput with RISK_OFFICER_PASSWORD"):
        run("create_risk_officer", "rita")
    assert not get_user_model().objects.filter(username="rita").exists()


def test_the_first_debug_start_creates_demo_users_and_says_once_where_the_login_is(settings, tmp_path):
    settings.DEBUG = True
    settings.VAR_DIR = tmp_path

    first = run("bootstrap_demo", port="8123")
    second = run("bootstrap_demo", port="8123")

    assert "http://127.0.0.1:8123/admin/" in first and "curl -s -X POST http://127.0.0.1:8123/v1/orders" in first
    assert second == ""
    credentials = (tmp_path / "demo-credentials").read_text()
    password = credentials.split("admin password: ")[1].split()[0]
    token = (tmp_path / "demo-api-token").read_text()
    assert get_user_model().objects.get(username="officer").check_password(password)
    assert password not in first and token not in first  # no credential on the terminal
    assert (tmp_path / "demo-credentials").stat().st_mode & 0o777 == 0o600


def test_a_non_debug_deployment_gets_no_demo_users(settings):
    settings.DEBUG = False

    run("bootstrap_demo")

    assert not get_user_model().objects.exists()
