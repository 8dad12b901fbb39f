"""Admin login lockout (django-axes): by username and address, visible to officers, lifted by an officer.

Everything goes through the admin's login page, as an attacker and an
officer use it. The limit is the configured default (ADMIN_LOGIN_FAILURE_LIMIT).
"""

from __future__ import annotations

import io

import pytest
from axes.models import AccessAttempt
from django.contrib.admin.models import DELETION, LogEntry
from django.core.management import call_command
from django.test import Client

from tests.admin.conftest import logged_in

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery staple"  # the factories' password
LOGIN = "/admin/login/?next=/admin/"


def attempt(username: str, password: str, address: str = "198.51.100.7") -> int:
    response = Client(REMOTE_ADDR=address).post(LOGIN, {"username": username, "password": password})
    if response.status_code == 302:
        assert response["Location"] == "/admin/"
    return response.status_code


def lock_out(username: str, settings, address: str = "198.51.100.7") -> list[int]:
    return [attempt(username, "wrong password", address) for _ in range(settings.AXES_FAILURE_LIMIT)]


def test_repeated_wrong_passwords_lock_the_account_out_even_for_the_right_password(settings, officer):
    failures = lock_out("olivia", settings)

    assert failures[:-1] == [200] * (settings.AXES_FAILURE_LIMIT - 1)  # the form again, "wrong password"
    assert failures[-1] == 429  # the attempt that reaches the limit is refused as locked
    assert attempt("olivia", PASSWORD) == 429  # the right password no longer opens it
    page = Client(REMOTE_ADDR="198.51.100.7").post(LOGIN, {"username": "olivia", "password": PASSWORD})
    assert b"too many login attempts" in page.content.lower() or b"locked" in page.content.lower()


def test_one_officers_lockout_does_not_lock_out_another_officer_at_the_same_address(
    settings, officer, second_officer
):
    lock_out("olivia", settings)

    assert attempt("oscar", PASSWORD) == 302  # same address, another officer: logs in


def test_a_lockout_is_per_address_so_a_stranger_cannot_lock_an_officer_out_everywhere(settings, officer):
    lock_out("olivia", settings, address="203.0.113.66")

    assert attempt("olivia", PASSWORD, address="198.51.100.7") == 302


def test_lockouts_are_visible_to_officers_and_auditors_in_the_admin(settings, officer, second_officer, auditor):
    lock_out("olivia", settings)

    for user in (second_officer, auditor):
        page = logged_in(user).get("/admin/axes/accessattempt/")
        assert page.status_code == 200
        assert b"olivia" in page.content and b"Locked Out" in page.content


def test_an_officer_lifts_a_lockout_from_the_admin_and_the_officer_logs_in_again(settings, officer, second_officer):
    lock_out("olivia", settings)
    locked = AccessAttempt.objects.get(username="olivia")

    response = logged_in(second_officer).post(
        "/admin/axes/accessattempt/",
        {"action": "lift_lockout", "_selected_action": [locked.pk]},
        follow=True,
    )

    assert response.status_code == 200 and b"Lockout lifted: olivia" in response.content
    assert attempt("olivia", PASSWORD) == 302
    history = LogEntry.objects.get(action_flag=DELETION, user=second_officer)
    assert "olivia from 198.51.100.7" in history.get_change_message()


def test_an_auditor_cannot_lift_a_lockout(settings, officer, auditor):
    lock_out("olivia", settings)
    locked = AccessAttempt.objects.get(username="olivia")

    logged_in(auditor).post(
        "/admin/axes/accessattempt/", {"action": "lift_lockout", "_selected_action": [locked.pk]}
    )

    assert attempt("olivia", PASSWORD) == 429


def test_the_axes_reset_username_command_lifts_a_lockout(settings, officer):
    lock_out("olivia", settings)

    call_command("axes_reset_username", "olivia", stdout=io.StringIO())

    assert attempt("olivia", PASSWORD) == 302
