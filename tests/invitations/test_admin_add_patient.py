"""Adding a patient in the admin with the "Send portal invitation" box: it invites after commit,
marks on each field what the invitation still needs, and is not offered to a viewer."""

import pytest
from django.core import mail
from django.urls import reverse

from invitations.models import Invitation, Source, Status
from patients.models import Patient, Role
from tests.clock import NOW
from tests.factories import PatientFactory, staff_member
from tests.invitations.patient_admin import (
    CHANGELIST,
    add_patient_data,
    invitation_url,
    messages_of,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("frozen")]


def test_adding_a_patient_with_the_box_ticked_invites_and_emails_after_commit(
    client_a, practice_a, front_desk_a, eager_celery, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = client_a.post(reverse("admin:patients_patient_add"), add_patient_data(practice_a))
    assert response.status_code == 302
    patient = Patient.objects.get(chart_number="N100")
    invitation = patient.invitations.get()
    assert invitation.source == Source.NEW_PATIENT
    assert invitation.created_by == front_desk_a
    assert invitation.status == Status.SENT
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["ann@example.com"]
    assert any("on its way to ann@example.com" in t for t in messages_of(response))


def test_with_the_box_ticked_what_the_invitation_needs_is_marked_on_its_fields_and_nothing_is_saved(client_a, practice_a):
    """The first try used to save the patient and then list what was missing: now the form says
    it on each field, and the patient is saved with the invitation once it is all there."""
    response = client_a.post(
        reverse("admin:patients_patient_add"),
        add_patient_data(practice_a, zip_code="", email_consent=None, birth_sex=""),
    )
    assert response.status_code == 200
    assert not Patient.objects.filter(chart_number="N100").exists()
    errors = response.context["adminform"].form.errors
    assert errors["zip_code"][0].startswith("ZIP code is missing. Needed for the portal invitation")
    assert errors["birth_sex"][0].startswith("Birth sex is missing.")
    assert errors["email_consent"][0].startswith("The patient has not consented to email.")
    assert set(errors) == {"zip_code", "birth_sex", "email_consent"}


def test_a_practice_with_invitations_off_says_so_on_the_checkbox(client_a, practice_a):
    practice_a.invitations_enabled = False
    practice_a.save()
    response = client_a.post(reverse("admin:patients_patient_add"), add_patient_data(practice_a))
    assert response.status_code == 200
    assert "Portal invitations are turned off" in response.context["adminform"].form.errors["send_invitation"][0]


def test_the_add_form_starts_with_the_invitation_box_and_marks_what_it_needs_live(client_a, practice_a):
    content = client_a.get(reverse("admin:patients_patient_add")).content.decode()
    assert content.index("id_send_invitation") < content.index("id_chart_number")
    assert '<script id="needed-for-invitation" type="application/json">' in content
    assert '"zip_code"' in content and "Still needed for the invitation" in content


@pytest.mark.parametrize(
    "fields",
    [
        {}, {"email": ""}, {"email": "not-an-address"}, {"zip_code": ""}, {"email_consent": False},
        {"deceased": True}, {"birth_sex": "", "first_name": ""}, {"date_of_birth": None}, {"email": "opted@example.com"},
    ],
)
def test_the_rules_for_an_unsaved_patient_agree_with_the_database_rules(practice_a, fields):
    from invitations import eligibility
    from patients.models import EmailOptOut

    EmailOptOut.objects.create(practice=practice_a, email="opted@example.com")
    unsaved = PatientFactory.build(practice=practice_a, **fields)
    before = [r.code for r in eligibility.reasons_before_saving(unsaved)]
    unsaved.save()
    assert before == [r.code for r in eligibility.reasons_for(unsaved, now=NOW)]


def test_an_unticked_box_sends_nothing(client_a, practice_a):
    response = client_a.post(reverse("admin:patients_patient_add"), add_patient_data(practice_a, send_invitation=None))
    assert response.status_code == 302
    assert not Invitation.objects.exists()


def test_a_viewer_gets_no_checkbox_and_cannot_use_the_buttons(client, practice_a):
    viewer = staff_member(practice_a, Role.VIEWER, username="viewer_a")
    patient = PatientFactory(practice=practice_a)
    client.force_login(viewer)
    page = client.get(reverse("admin:patients_patient_change", args=[patient.pk]))
    assert page.status_code == 200
    assert "Send portal invitation" not in page.content.decode()
    assert client.post(invitation_url(patient, "invite")).status_code == 403
    assert not Invitation.objects.exists()
    # Nor the list actions.
    response = client.get(CHANGELIST)
    assert "invite_selected" not in response.content.decode()
