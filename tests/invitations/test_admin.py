"""Invitations in the admin: the add-form checkbox, status column and filter, actions,
the patient page buttons, and tenant scoping of all of them."""

import datetime

import pytest
import time_machine
from django.contrib.messages import get_messages
from django.core import mail
from django.urls import reverse

from invitations.models import EventKind, Invitation, RevokeReason, Source, Status
from patients.models import Patient, Role
from tests.factories import PatientFactory, staff_member
from tests.invitations.factories import NOW, InvitationFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("frozen")]
CHANGELIST = reverse("admin:patients_patient_changelist")


def texts(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def invitation_url(patient, operation):
    return reverse("admin:patients_patient_invitation", args=[patient.pk, operation])


def add_patient_data(practice, **overrides):
    data = {
        "practice": practice.pk, "chart_number": "N100", "first_name": "Ann", "last_name": "Lee",
        "date_of_birth": "1990-04-01", "birth_sex": "F", "email": "ann@example.com", "phone": "",
        "zip_code": "02139", "email_consent": "on", "send_invitation": "on",
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


# -- new patient with the checkbox ---------------------------------------------------------


def test_adding_a_patient_with_the_box_ticked_invites_and_emails_after_commit(
    client_a, practice_a, front_desk_a, django_capture_on_commit_callbacks
):
    from portal_project.celery import app

    app.conf.task_always_eager = True
    try:
        with django_capture_on_commit_callbacks(execute=True):
            response = client_a.post(reverse("admin:patients_patient_add"), add_patient_data(practice_a))
    finally:
        app.conf.task_always_eager = False
    assert response.status_code == 302
    patient = Patient.objects.get(chart_number="N100")
    invitation = patient.invitations.get()
    assert invitation.source == Source.NEW_PATIENT
    assert invitation.created_by == front_desk_a
    assert invitation.status == Status.SENT
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["ann@example.com"]
    assert any("on its way to ann@example.com" in t for t in texts(response))


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


# -- the status column and its filter ------------------------------------------------------


@pytest.fixture
def one_of_each(practice_a):
    from django.contrib.auth import get_user_model

    p = {name: PatientFactory(practice=practice_a, last_name=name) for name in
         ["Notinvited", "Pendingx", "Sentx", "Expiredx", "Runout", "Failedx", "Revokedx", "Activex"]}
    InvitationFactory(patient=p["Pendingx"], status=Status.PENDING, sent_at=None)
    InvitationFactory(patient=p["Sentx"])
    InvitationFactory(patient=p["Expiredx"], status=Status.EXPIRED, created_at=NOW - datetime.timedelta(days=9))
    InvitationFactory(patient=p["Runout"], created_at=NOW - datetime.timedelta(days=7, seconds=1))
    InvitationFactory(patient=p["Failedx"], status=Status.FAILED)
    InvitationFactory(patient=p["Revokedx"], status=Status.REVOKED)
    p["Activex"].portal_user = get_user_model().objects.create_user("active.one")
    p["Activex"].save()
    return p


@pytest.mark.parametrize(
    "value,expected",
    [
        ("not_invited", {"Notinvited"}),
        ("pending", {"Pendingx"}),
        ("sent", {"Sentx"}),
        ("expired", {"Expiredx", "Runout"}),
        ("failed", {"Failedx"}),
        ("revoked", {"Revokedx"}),
        ("active", {"Activex"}),
    ],
)
def test_the_status_filter_selects_each_status(client_a, one_of_each, value, expected):
    response = client_a.get(CHANGELIST + f"?portal_status={value}")
    assert {p.last_name for p in response.context["cl"].result_list} == expected


def test_the_status_filter_agrees_with_the_status_column_for_every_status(one_of_each, frozen):
    from django.utils import timezone

    from invitations.portal_status import PortalStatus, filter_by_portal_status, with_portal_status
    from patients.models import Patient

    # A patient whose account was removed after registering: latest invitation accepted, no user.
    InvitationFactory(patient=PatientFactory(practice=one_of_each["Sentx"].practice, last_name="Acceptedx"), status=Status.ACCEPTED)
    now = timezone.now()
    annotated = with_portal_status(Patient.objects.all(), now)
    for value in PortalStatus.LABELS:
        column = {p.last_name for p in annotated if p.portal_status == value}
        assert {p.last_name for p in filter_by_portal_status(annotated, value, now)} == column, value


def test_the_status_column_shows_coloured_tags(client_a, one_of_each):
    content = client_a.get(CHANGELIST).content.decode()
    for label in ["Not invited", "Being sent", "Sent", "Expired", "Failed", "Revoked", "Registered"]:
        assert f">{label}</span>" in content
    assert 'class="portal-status portal-status-expired"' in content


def test_the_patient_list_query_count_does_not_grow_with_rows(client_a, practice_a, django_assert_max_num_queries):
    def count_queries():
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        with CaptureQueriesContext(connection) as captured:
            assert client_a.get(CHANGELIST).status_code == 200
        return len(captured)

    for i in range(5):
        InvitationFactory(patient=PatientFactory(practice=practice_a))
    few = count_queries()
    for i in range(40):
        InvitationFactory(patient=PatientFactory(practice=practice_a), status=[Status.SENT, Status.FAILED][i % 2])
        PatientFactory(practice=practice_a)
    with django_assert_max_num_queries(few):
        client_a.get(CHANGELIST)
    assert count_queries() == few


# -- actions -------------------------------------------------------------------------------


def post_action(client, action, patients, **extra):
    data = {"action": action, "_selected_action": [p.pk for p in patients], **extra}
    return client.post(CHANGELIST, data)


def test_the_invite_action_invites_the_eligible_and_lists_the_skipped(client_a, practice_a):
    good = PatientFactory(practice=practice_a)
    no_email = PatientFactory(practice=practice_a, email="", last_name="Noemail")
    response = post_action(client_a, "invite_selected", [good, no_email])
    assert response.status_code == 302
    assert good.invitations.filter(status=Status.PENDING, source=Source.MANUAL).exists()
    assert not no_email.invitations.exists()
    messages = texts(response)
    assert "Invited 1 patient." in messages
    assert any("Skipped 1" in t and "Noemail" in t and "Email address is missing." in t for t in messages)


def test_resend_asks_for_confirmation_listing_who_gets_a_link_and_who_is_skipped(
    client_a, practice_a, eager_celery, django_capture_on_commit_callbacks
):
    sent = InvitationFactory(patient=PatientFactory(practice=practice_a, last_name="Willget"),
                             created_at=NOW - datetime.timedelta(hours=2))
    deceased = PatientFactory(practice=practice_a, last_name="Skipme", deceased=True)
    response = post_action(client_a, "resend_selected", [sent.patient, deceased])
    assert response.status_code == 200
    assert [p.pk for p in response.context["will_send"]] == [sent.patient.pk]
    assert [(p.pk, why) for p, why in response.context["will_skip"]] == [(deceased.pk, "The patient is marked deceased.")]
    assert "Willget" in response.content.decode()
    sent.refresh_from_db()
    assert sent.status == Status.SENT  # nothing changed yet

    with django_capture_on_commit_callbacks(execute=True):  # several patients: sent by a worker
        response = post_action(client_a, "resend_selected", [sent.patient, deceased], confirm="yes")
    assert response.status_code == 302 and "/progress/" in response["Location"]
    sent.refresh_from_db()
    assert sent.status == Status.REVOKED and sent.revoke_reason == RevokeReason.RESENT
    new = sent.patient.invitations.get(status=Status.SENT)
    assert new.source == Source.BULK_RESEND and new.pk != sent.pk
    assert not deceased.invitations.exists()


def test_the_revoke_action_revokes_open_links(client_a, practice_a, front_desk_a):
    invitation = InvitationFactory(patient=PatientFactory(practice=practice_a))
    confirm = post_action(client_a, "revoke_selected", [invitation.patient])
    assert confirm.status_code == 200 and "will stop working at once" in confirm.content.decode()
    invitation.refresh_from_db()
    assert invitation.status == Status.SENT  # asking changes nothing
    response = post_action(client_a, "revoke_selected", [invitation.patient], confirm="yes")
    assert response.status_code == 302
    invitation.refresh_from_db()
    assert invitation.status == Status.REVOKED and invitation.revoke_reason == RevokeReason.STAFF
    assert invitation.events.get(kind=EventKind.REVOKED).actor == front_desk_a


def test_actions_cannot_reach_another_practices_patients(client_a, practice_b):
    other = PatientFactory(practice=practice_b)
    open_b = InvitationFactory(patient=PatientFactory(practice=practice_b))
    post_action(client_a, "invite_selected", [other])
    post_action(client_a, "revoke_selected", [open_b.patient], confirm="yes")
    post_action(client_a, "resend_selected", [open_b.patient], confirm="yes")
    assert not other.invitations.exists()
    open_b.refresh_from_db()
    assert open_b.status == Status.SENT
    assert Invitation.objects.count() == 1


# -- the patient page ----------------------------------------------------------------------


def test_the_patient_page_shows_status_expiry_timeline_and_buttons(client_a, practice_a):
    invitation = InvitationFactory(patient=PatientFactory(practice=practice_a), created_at=NOW - datetime.timedelta(hours=2))
    invitation.record(EventKind.LINK_OPENED, now=NOW)
    response = client_a.get(reverse("admin:patients_patient_change", args=[invitation.patient.pk]))
    content = response.content.decode()
    assert ">Sent</span>" in content
    assert "An invitation went to" in content and "The link works until" in content and "March 9, 2026" in content
    assert "cannot be sent" not in content  # a working link out is the good state, not an error
    assert "Invitation timeline" in content and "Opened the link" in content
    assert invitation_url(invitation.patient, "resend") in content
    assert invitation_url(invitation.patient, "revoke") in content


def test_right_after_an_invite_resend_is_not_offered_and_says_when_it_will_be(client_a, practice_a):
    invitation = InvitationFactory(patient=PatientFactory(practice=practice_a), created_at=NOW - datetime.timedelta(minutes=10))
    content = client_a.get(reverse("admin:patients_patient_change", args=[invitation.patient.pk])).content.decode()
    assert invitation_url(invitation.patient, "resend") not in content
    assert "disabled" in content and "Possible from" in content and "less than an hour ago" in content
    assert "cannot be sent" not in content


def test_a_voided_link_can_be_replaced_at_once(client_a, practice_a):
    invitation = InvitationFactory(patient=PatientFactory(practice=practice_a), created_at=NOW - datetime.timedelta(minutes=10))
    invitation.revoke(NOW, reason=RevokeReason.TOO_MANY_ATTEMPTS)
    content = client_a.get(reverse("admin:patients_patient_change", args=[invitation.patient.pk])).content.decode()
    assert "Send portal invitation" in content


def test_the_patient_page_explains_why_no_invitation_can_be_sent(client_a, practice_a):
    patient = PatientFactory(practice=practice_a, email_consent=False)
    content = client_a.get(reverse("admin:patients_patient_change", args=[patient.pk])).content.decode()
    assert "An invitation cannot be sent now" in content
    assert "The patient has not consented to email." in content


def test_the_page_buttons_invite_resend_and_revoke(client_a, practice_a):
    patient = PatientFactory(practice=practice_a)
    assert client_a.post(invitation_url(patient, "invite")).status_code == 302
    first = patient.invitations.get()
    assert first.status == Status.PENDING

    too_soon = client_a.post(invitation_url(patient, "resend"))
    assert "less than an hour ago" in too_soon.content.decode()
    frozen_later = NOW + datetime.timedelta(hours=2)
    with time_machine.travel(frozen_later, tick=False):
        confirm_page = client_a.post(invitation_url(patient, "resend"))
        assert confirm_page.status_code == 200 and "will get a new link" in confirm_page.content.decode()
        first.refresh_from_db()
        assert first.status == Status.PENDING  # asking changes nothing
        assert client_a.post(invitation_url(patient, "resend"), {"confirm": "yes"}).status_code == 302
    first.refresh_from_db()
    assert first.revoke_reason == RevokeReason.RESENT
    second = patient.invitations.get(status=Status.PENDING)

    confirm = client_a.post(invitation_url(patient, "revoke"))
    assert confirm.status_code == 200 and "Yes, revoke 1 link" in confirm.content.decode()
    assert client_a.post(invitation_url(patient, "revoke"), {"confirm": "yes"}).status_code == 302
    second.refresh_from_db()
    assert second.status == Status.REVOKED


def test_the_page_buttons_are_post_only(client_a, practice_a):
    patient = PatientFactory(practice=practice_a)
    assert client_a.get(invitation_url(patient, "invite")).status_code == 405
    assert not patient.invitations.exists()


@pytest.mark.parametrize("operation", ["invite", "resend", "revoke"])
def test_the_page_buttons_give_404_for_another_practices_patient(client_a, practice_b, operation):
    invitation = InvitationFactory(patient=PatientFactory(practice=practice_b))
    response = client_a.post(invitation_url(invitation.patient, operation), {"confirm": "yes"})
    assert response.status_code == 404
    invitation.refresh_from_db()
    assert invitation.status == Status.SENT
    assert Invitation.objects.count() == 1


# -- revocation on email change and opt-out --------------------------------------------------


def test_changing_the_email_in_the_admin_revokes_the_link_for_good(client_a, practice_a):
    invitation = InvitationFactory(patient=PatientFactory(practice=practice_a, email="old@example.com"))
    patient = invitation.patient
    data = add_patient_data(practice_a, chart_number=patient.chart_number, first_name=patient.first_name,
                            last_name=patient.last_name, date_of_birth="1980-05-17", email="new@example.com",
                            send_invitation=None)
    response = client_a.post(reverse("admin:patients_patient_change", args=[patient.pk]), data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    invitation.refresh_from_db()
    assert invitation.status == Status.REVOKED
    assert invitation.revoke_reason == RevokeReason.EMAIL_CHANGED
    assert any("revoked" in t for t in texts(response))
    # The old link can never be re-sent: a resend makes a new link to the new address.
    later = NOW + datetime.timedelta(hours=2)
    with time_machine.travel(later, tick=False):
        client_a.post(invitation_url(patient, "resend"), {"confirm": "yes"})
    assert patient.invitations.get(status=Status.PENDING).email == "new@example.com"
    invitation.refresh_from_db()
    assert invitation.status == Status.REVOKED


def test_adding_an_address_to_the_opt_out_list_revokes_its_open_links(client_a, practice_a, practice_b):
    mine = InvitationFactory(patient=PatientFactory(practice=practice_a, email="family@example.com"))
    sibling = InvitationFactory(patient=PatientFactory(practice=practice_a, email="family@example.com"))
    elsewhere = InvitationFactory(patient=PatientFactory(practice=practice_b, email="family@example.com"))
    response = client_a.post(
        reverse("admin:patients_emailoptout_add"),
        {"practice": practice_a.pk, "email": "Family@Example.com", "reason": "patient_request"},
    )
    assert response.status_code == 302
    for invitation in (mine, sibling):
        invitation.refresh_from_db()
        assert (invitation.status, invitation.revoke_reason) == (Status.REVOKED, RevokeReason.OPTED_OUT)
    elsewhere.refresh_from_db()
    assert elsewhere.status == Status.SENT


# -- the invitation admin -------------------------------------------------------------------


def test_the_invitation_admin_is_scoped_and_shows_the_timeline(client_a, practice_a, practice_b):
    own = InvitationFactory(patient=PatientFactory(practice=practice_a, last_name="Ownpatient"))
    own.record(EventKind.LINK_OPENED, now=NOW)
    other = InvitationFactory(patient=PatientFactory(practice=practice_b, last_name="Otherpatient"))
    listing = client_a.get(reverse("admin:invitations_invitation_changelist")).content.decode()
    assert "Ownpatient" in listing and "Otherpatient" not in listing
    page = client_a.get(reverse("admin:invitations_invitation_change", args=[own.pk]))
    assert page.status_code == 200 and "Opened the link" in page.content.decode()
    assert client_a.get(reverse("admin:invitations_invitation_change", args=[other.pk])).status_code == 404


def test_the_template_admin_requires_the_link_snippet_and_sanitises(client, practice_a):
    admin_user = staff_member(practice_a, Role.ADMIN, username="tpl_admin")
    client.force_login(admin_user)
    url = reverse("admin:invitations_invitationtemplate_add")
    response = client.post(url, {"practice": practice_a.pk, "subject": "Hi", "html_body": "<p>No link {{ x }} [Birthday]</p>"})
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors["html_body"]
    assert any("[Registration Link]" in e for e in errors)
    assert any("[Birthday]" in e for e in errors)
    assert any("{{ }}" in e for e in errors)

    response = client.post(url, {
        "practice": practice_a.pk, "subject": "Welcome from [Practice Name]",
        "html_body": '<p onclick="x()">Hi [First Name]</p><script>alert(1)</script><a href="[Registration Link]">Go</a>',
    })
    assert response.status_code == 302
    template = practice_a.invitation_template
    assert "script" not in template.html_body and "onclick" not in template.html_body
    assert 'href="[Registration Link]"' in template.html_body


def test_the_list_can_be_sorted_by_portal_status(client_a, one_of_each):
    response = client_a.get(CHANGELIST)
    index = next(i for i, h in enumerate(response.context["cl"].list_display) if h == "invitation_status")
    ordered = client_a.get(CHANGELIST + f"?o={index}")
    assert ordered.status_code == 200
    statuses = [p.portal_status for p in ordered.context["cl"].result_list]
    assert statuses == sorted(statuses)


def test_the_practice_page_shows_the_request_access_address(client, practice_a):
    admin_user = staff_member(practice_a, Role.ADMIN, username="prac_admin")
    client.force_login(admin_user)
    content = client.get(reverse("admin:patients_practice_change", args=[practice_a.pk])).content.decode()
    assert f"https://portal.example.test/practices/{practice_a.pk}/request-access/" in content
    assert "closed" in content


def test_a_registered_patients_page_offers_no_invitation_buttons(client_a, one_of_each):
    patient = one_of_each["Activex"]
    content = client_a.get(reverse("admin:patients_patient_change", args=[patient.pk])).content.decode()
    assert ">Registered</span>" in content
    assert invitation_url(patient, "invite") not in content
    assert invitation_url(patient, "resend") not in content


def test_only_practice_admins_and_managers_edit_the_email_template(client_a, practice_a, practice_b):
    from django.test import Client

    from invitations.models import InvitationTemplate

    add = reverse("admin:invitations_invitationtemplate_add")
    body = {"practice": practice_a.pk, "subject": "Hi", "html_body": "[Registration Link]"}
    assert client_a.get(add).status_code == 403  # front desk
    assert client_a.post(add, body).status_code == 403
    manager = staff_member(practice_a, Role.MANAGER, username="mgr_a")
    client = Client()
    client.force_login(manager)
    assert client.post(add, body).status_code == 302
    template = InvitationTemplate.objects.get(practice=practice_a)
    assert template.updated_by == manager
    other = InvitationTemplate.objects.create(practice=practice_b, subject="B", html_body="[Registration Link]")
    assert client.get(reverse("admin:invitations_invitationtemplate_change", args=[other.pk])).status_code == 404
    # The front desk may read the wording but not change it.
    page = client_a.get(reverse("admin:invitations_invitationtemplate_change", args=[template.pk]))
    assert page.status_code == 200 and 'name="html_body"' not in page.content.decode()


def test_invitation_actions_are_in_the_staff_audit_trail(client_a, practice_a, front_desk_a):
    from patients.audit import AuditAction, AuditEntry

    patient = PatientFactory(practice=practice_a, last_name="Audited")
    client_a.post(invitation_url(patient, "invite"))
    client_a.post(invitation_url(patient, "revoke"), {"confirm": "yes"})
    entries = list(AuditEntry.objects.order_by("id").values_list("action", "patient", "actor"))
    assert entries == [
        (AuditAction.INVITE, patient.pk, front_desk_a.pk),
        (AuditAction.REVOKE, patient.pk, front_desk_a.pk),
    ]
    assert all("Audited" not in e.summary for e in AuditEntry.objects.all())


@pytest.mark.parametrize("term", ["Ownpatient", "own@", "not-a-uuid", ""])
def test_the_invitation_list_search_never_errors(client_a, practice_a, term):
    own = InvitationFactory(patient=PatientFactory(practice=practice_a, last_name="Ownpatient", email="own@example.com"))
    response = client_a.get(reverse("admin:invitations_invitation_changelist"), {"q": term})
    assert response.status_code == 200
    if term in ("Ownpatient", "own@"):
        assert list(response.context["cl"].result_list) == [own]


def test_the_invitation_list_finds_an_invitation_by_its_public_id(client_a, practice_a):
    own = InvitationFactory(patient=PatientFactory(practice=practice_a))
    InvitationFactory(patient=PatientFactory(practice=practice_a))
    response = client_a.get(reverse("admin:invitations_invitation_changelist"), {"q": str(own.public_id)})
    assert list(response.context["cl"].result_list) == [own]


def test_the_invitation_list_shows_run_out_links_as_expired(client_a, practice_a):
    InvitationFactory(patient=PatientFactory(practice=practice_a), created_at=NOW - datetime.timedelta(days=7, seconds=1))
    InvitationFactory(patient=PatientFactory(practice=practice_a), created_at=NOW - datetime.timedelta(days=7) + datetime.timedelta(seconds=1))
    content = client_a.get(reverse("admin:invitations_invitation_changelist")).content.decode()
    assert content.count(">Expired</span>") == 1 and content.count(">Sent</span>") == 1
