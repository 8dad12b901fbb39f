"""Every unmatched /v1 path and every malformed id is a 404 problem, with DEBUG on as under `make run`.

With DEBUG on, Django answers an unmatched URL with its technical 404 page,
which lists every URL pattern of the project; /v1 must never show it.
"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db

UNMATCHED = [
    "/v1/nowhere",
    "/v1/orders/not-a-uuid",
    "/v1/orders/12345",
    "/v1/orders/0b6a9e0e-1d7b-4f5e-9d4c-8a2b6f0e1c3d/legs/x",
    "/v1/orders/",
    "/v1/controls/mode/not a slug",
    "/v1/",
    "/v1/admin/",
]


@pytest.mark.parametrize("debug", [True, False], ids=["debug on", "debug off"])
@pytest.mark.parametrize("path", UNMATCHED)
def test_an_unmatched_v1_path_is_a_404_problem(settings, alice_api, debug, path):
    settings.DEBUG = debug

    response = alice_api.get(path)

    assert response.status_code == 404, response.content[:200]
    assert response["Content-Type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == 404 and problem["title"] == "Not found"
    assert "urlpatterns" not in response.content.decode() and "admin/" not in problem["detail"]


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete", "options", "head"])
def test_any_method_on_an_unmatched_v1_path_is_a_404_problem(settings, alice_api, method):
    settings.DEBUG = True

    response = getattr(alice_api, method)("/v1/orders/not-a-uuid")

    assert response.status_code == 404
    assert response["Content-Type"] == "application/problem+json"


def test_an_anonymous_caller_also_gets_a_404_problem(settings, client):
    settings.DEBUG = True

    response = client.get("/v1/does/not/exist")

    assert response.status_code == 404
    assert response["Content-Type"] == "application/problem+json"


def test_the_site_root_redirects_to_the_admin(client, officer):
    response = client.get("/")

    assert response.status_code == 302 and response["Location"] == "/admin/"
    client.force_login(officer)
    assert client.get("/", follow=True).status_code == 200  # the admin's "View site" lands somewhere
