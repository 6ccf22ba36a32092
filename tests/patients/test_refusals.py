"""A refused action says why, in the product's words; it is logged once, without a traceback; and
the site has an icon."""

import pytest
from django.contrib.staticfiles import finders
from django.urls import reverse

from patients.models import Role
from tests.factories import PatientFactory, staff_member
from tests.test_logging import configured_handler_output

pytestmark = pytest.mark.django_db


def test_a_viewers_refused_write_shows_the_reason_not_a_bare_403(client, practice_a):
    viewer = staff_member(practice_a, Role.VIEWER, username="viewer_a")
    patient = PatientFactory(practice=practice_a)
    client.force_login(viewer)
    response = client.post(reverse("admin:patients_patient_invitation", args=[patient.pk, "invite"]))
    assert response.status_code == 403
    content = response.content.decode()
    assert "Your role at this practice does not allow this." in content
    assert "Memberships page" in content and "<h1>Not allowed</h1>" in content
    # The product's own page: its name, the user's menu (sign out from here), never Django's branding.
    assert "Django administration" not in content and "Django site admin" not in content
    assert ">Practice Portal</a>" in content and "Not allowed | Practice Portal" in content
    assert 'id="user-tools"' in content and 'id="logout-form"' in content and "viewer_a" in content


def test_a_refusal_is_logged_once_without_a_traceback(client, practice_a):
    viewer = staff_member(practice_a, Role.VIEWER, username="viewer_b")
    patient = PatientFactory(practice=practice_a)
    client.force_login(viewer)
    output = configured_handler_output(
        "django.request",
        lambda: client.post(reverse("admin:patients_patient_invitation", args=[patient.pk, "invite"])),
    )
    assert output.count("Forbidden (Permission denied)") == 1
    assert "Traceback" not in output


def test_the_site_has_an_icon(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 301 and response["Location"].endswith("portal/favicon.ico")
    assert finders.find("portal/favicon.ico")
