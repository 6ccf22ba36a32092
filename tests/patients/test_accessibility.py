"""Staff pages announce every help text they point at: each aria-describedby / aria-labelledby
names ids that exist on the page (the dashboard's switches and the template editor pointed at
help texts without ids)."""

import re

import pytest
from django.urls import reverse

from patients.models import Role
from tests.factories import PatientFactory, PracticeFactory, staff_member

pytestmark = pytest.mark.django_db


def dangling_references(page: str) -> list[str]:
    ids = set(re.findall(r'\sid="([^"]+)"', page))
    refs = [ref for attr in re.findall(r'aria-(?:describedby|labelledby)="([^"]*)"', page) for ref in attr.split()]
    return [ref for ref in refs if ref not in ids]


def test_every_help_text_a_control_points_at_exists(client):
    practice = PracticeFactory(name="Maple Street Dental", text_invitations_enabled=True)
    patient = PatientFactory(practice=practice)
    client.force_login(staff_member(practice, Role.ADMIN))
    urls = [
        reverse("admin:invitations_portal_dashboard", args=[practice.pk]),
        reverse("admin:invitations_portal_template", args=[practice.pk]),
        reverse("admin:invitations_portal_activate", args=[practice.pk]),
        reverse("admin:patients_patient_import"),
        reverse("admin:patients_patient_add"),
        reverse("admin:patients_patient_change", args=[patient.pk]),
        reverse("admin:patients_patient_diagnostics", args=[patient.pk]),
        reverse("admin:patients_practice_change", args=[practice.pk]),
        reverse("admin:patients_membership_add"),
        reverse("admin:notifications_my_preferences"),
    ]
    for url in urls:
        response = client.get(url)
        assert response.status_code == 200, url
        page = response.content.decode()
        assert dangling_references(page) == [], url
        if url.endswith("/template/") or "/portal/" in url and url.endswith(f"/{practice.pk}/"):
            assert "_helptext" in page, url  # the help texts are there and named
