"""The admin header's "View site" link leads somewhere real, never to a 404."""

import re

import pytest

pytestmark = pytest.mark.django_db


def test_view_site_in_the_admin_header_leads_to_a_page_that_answers(officer_client):
    page = officer_client.get("/admin/").content.decode()
    link = re.search(r'<a href="([^"]+)">View site</a>', page)

    assert link, "no 'View site' link in the admin header"
    assert officer_client.get(link[1], follow=True).status_code == 200, link[1]
