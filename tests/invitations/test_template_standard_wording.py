"""The template editor's way back from a practice's own HTML to the shipped wording."""

import json
import re

import pytest
from django.urls import reverse

from invitations.models import InvitationTemplate
from patients.models import Role
from tests.factories import PracticeFactory, staff_member

pytestmark = pytest.mark.django_db


def test_the_editor_offers_the_standard_wording_to_put_back(client):
    practice = PracticeFactory(name="Maple Street Dental")
    InvitationTemplate.objects.create(
        practice=practice, subject="Hi from [Practice Name]", html_body="<p>Our own words [Registration Link]</p>",
    )
    client.force_login(staff_member(practice, Role.MANAGER))
    page = client.get(reverse("admin:invitations_portal_template", args=[practice.pk])).content.decode()
    assert 'id="use-standard-wording"' in page and "Put back the standard wording" in page
    standard = json.loads(re.search(r'<script id="standard-wording" type="application/json">(.*?)</script>', page, re.S).group(1))
    shipped = InvitationTemplate.default()
    assert standard == {"subject": shipped.subject, "html_body": shipped.html_body, "text_body": ""}
    assert "[Registration Link]" in standard["html_body"] and "Our own words" not in standard["html_body"]
