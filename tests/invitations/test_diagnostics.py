"""'Why no invite?': every check fails when it should and passes when it should."""

import datetime

import pytest
from django.contrib.auth import get_user_model
from django.test import override_settings
from django.urls import reverse

from invitations import diagnostics, eligibility
from invitations.models import EventKind, Invitation, RevokeReason, Status
from invitations.models.delivery_reports import store_once
from patients.jobs import record_heartbeat
from patients.models import EmailOptOut, Patient, SmsOptOut
from tests.clock import NOW
from tests.factories import PatientFactory
from tests.family_factories import AccessFactory, RepresentativeFactory
from tests.invitations.factories import InvitationFactory

pytestmark = pytest.mark.django_db


def checks_by_label(sections) -> dict:
    return {check.label: check for section in sections for check in section.checks}


def rule_label(code: str) -> str:
    return diagnostics.RULE_CHECKS[code][0]


def test_every_eligibility_rule_has_a_check_with_a_fix():
    codes = set(eligibility.RULES_BY_CODE)
    assert codes == set(diagnostics.RULE_CHECKS)
    assert codes == {code for codes in diagnostics.SECTIONS.values() for code in codes}


def _texting(patient: Patient) -> Patient:
    """The practice sends texts and the patient can get one."""
    patient.practice.text_invitations_enabled = True
    patient.practice.save()
    Patient.objects.filter(pk=patient.pk).update(mobile_phone="+16175550123", sms_consent=True)
    patient.refresh_from_db()
    return patient


def test_a_fine_patient_passes_every_rule_check():
    patient = _texting(PatientFactory())
    checks = checks_by_label(diagnostics.diagnose(patient, now=NOW))
    assert all(checks[rule_label(code)].ok for code in diagnostics.RULE_CHECKS)
    # Never invited: said as information, not as a failed check.
    assert checks["No invitation has been made for this patient"].ok is None


def test_at_a_practice_without_texts_the_text_checks_are_not_made():
    patient = PatientFactory()
    checks = checks_by_label(diagnostics.diagnose(patient, now=NOW))
    assert all(checks[rule_label(code)].ok for code in diagnostics.RULE_CHECKS if code not in diagnostics.TEXT_RULES)
    off = checks["Invitation texts are turned off for this practice (practice settings)"]
    assert off.ok is None and off.detail == "Invitations go by email only."
    for code in diagnostics.TEXT_RULES[1:]:
        assert checks[rule_label(code)].not_checked and checks[rule_label(code)].detail == diagnostics.TEXTS_OFF


def test_a_text_rule_only_informs_while_the_email_goes():
    record_heartbeat("celery@w1", now=NOW - datetime.timedelta(seconds=20))
    patient = _texting(PatientFactory())
    Patient.objects.filter(pk=patient.pk).update(sms_consent=False)
    patient.refresh_from_db()
    diagnosis = diagnostics.diagnose(patient, now=NOW)
    checks = checks_by_label(diagnosis)
    assert rule_label("no_sms_consent") not in checks  # its title says what it found instead
    check = checks["The patient has not consented to text messages"]
    assert check.ok is None and check.detail == "Texts are not possible, so invitations go by email only."
    assert not any(c.ok is False for section in diagnosis[:-2] for c in section.checks)
    assert diagnosis.verdict.headline == "Yes: an invitation can be sent now, by email only."
    assert diagnosis.verdict.channels_note == "Texts are not possible: The patient has not consented to text messages."


def test_an_email_rule_only_informs_while_a_text_goes():
    record_heartbeat("celery@w1", now=NOW - datetime.timedelta(seconds=20))
    patient = _texting(PatientFactory())
    Patient.objects.filter(pk=patient.pk).update(email_consent=False)
    patient.refresh_from_db()
    diagnosis = diagnostics.diagnose(patient, now=NOW)
    check = checks_by_label(diagnosis)["The patient has not consented to email"]
    assert check.ok is None and check.detail == "Email cannot be used, so invitations go by text message only."
    assert not any(c.ok is False for section in diagnosis[:-2] for c in section.checks)
    assert diagnosis.verdict.headline == "Yes: an invitation can be sent now, by text message only."


def _break(code: str, patient: Patient) -> None:
    practice = patient.practice
    if code == "invitations_disabled":
        practice.invitations_enabled = False
        practice.save()
    elif code == "activation_email_disabled":
        practice.activation_email_enabled = False
        practice.save()
    elif code == "registered":
        Patient.objects.filter(pk=patient.pk).update(portal_user=get_user_model().objects.create(username="p1"))
    elif code in diagnostics.TEXT_RULES:
        _break_text(code, patient)
    elif code.startswith("missing_"):
        field = code.removeprefix("missing_")
        Patient.objects.filter(pk=patient.pk).update(**{field: None if field == "date_of_birth" else ""})
    elif code == "invalid_email":
        Patient.objects.filter(pk=patient.pk).update(email="no-at-sign.example.com")
    elif code == "deceased":
        Patient.objects.filter(pk=patient.pk).update(deceased=True)
    elif code == "no_consent":
        Patient.objects.filter(pk=patient.pk).update(email_consent=False)
    elif code == "opted_out":
        EmailOptOut.objects.create(practice=practice, email=patient.email)
    elif code == "hard_bounce":
        Patient.objects.filter(pk=patient.pk).update(bounced_email=patient.email)
    elif code == "open_invitation":
        InvitationFactory(patient=patient, created_at=NOW - datetime.timedelta(days=2))
    elif code == "invited_recently":
        InvitationFactory(patient=patient, created_at=NOW - datetime.timedelta(minutes=10))
    elif code == "child_no_own_account":
        Patient.objects.filter(pk=patient.pk).update(date_of_birth=datetime.date(2020, 1, 1))
    elif code == "email_is_representatives":
        AccessFactory(patient=patient, representative=RepresentativeFactory(practice=practice, email=patient.email))
    else:
        raise AssertionError(f"no way to break {code}")


def _break_text(code: str, patient: Patient) -> None:
    """A text rule matters once email cannot be used: the patient has no address."""
    _texting(patient)
    Patient.objects.filter(pk=patient.pk).update(email="")
    if code == "missing_mobile":
        Patient.objects.filter(pk=patient.pk).update(mobile_phone="")
    elif code == "invalid_mobile":
        Patient.objects.filter(pk=patient.pk).update(mobile_phone="617-555-0123")
    elif code == "no_sms_consent":
        Patient.objects.filter(pk=patient.pk).update(sms_consent=False)
    elif code == "sms_opted_out":
        SmsOptOut.objects.create(practice=patient.practice, phone="+16175550123")
    elif code == "undeliverable_mobile":
        Patient.objects.filter(pk=patient.pk).update(undeliverable_mobile="+16175550123")
    elif code == "mobile_is_representatives":
        AccessFactory(patient=patient, representative=RepresentativeFactory(practice=patient.practice, mobile_phone="+16175550123"))
    elif code == "texted_recently":
        InvitationFactory(
            patient=patient, email="", by_email=False, by_text=True, text_to="+16175550123", text_status="queued",
            sent_at=None, created_at=NOW - datetime.timedelta(minutes=10),
        )
    else:
        raise AssertionError(f"no way to break {code}")


@pytest.mark.parametrize("code", sorted(set(diagnostics.RULE_CHECKS) - {"texts_disabled"}))
def test_each_rule_check_fails_with_its_fix(code):
    patient = PatientFactory()
    _break(code, patient)
    patient.refresh_from_db()
    patient.practice.refresh_from_db()
    check = checks_by_label(diagnostics.diagnose(patient, now=NOW))[rule_label(code)]
    assert check.ok is False
    assert check.fix == diagnostics.RULE_CHECKS[code][1]
    assert check.detail == eligibility.RULES_BY_CODE[code].message


def test_a_sent_and_delivered_invitation():
    invitation = InvitationFactory(created_at=NOW - datetime.timedelta(days=1))
    invitation.record(EventKind.DELIVERED, now=NOW)
    checks = checks_by_label(diagnostics.diagnose(invitation.patient, now=NOW))
    assert checks["It was handed to the email service"].ok is True
    assert checks["The email service confirmed delivery"].ok is True
    assert checks["The link has not expired"].ok is True


def test_a_bounced_invitation():
    invitation = InvitationFactory()
    invitation.record(EventKind.BOUNCED, now=NOW, detail="550")
    invitation.fail(NOW, reason="The email service reported: bounced (550)")
    checks = checks_by_label(diagnostics.diagnose(invitation.patient, now=NOW))
    assert checks["It did not bounce"].ok is False
    assert "bounced" in checks["It did not bounce"].detail


def test_an_expired_invitation_one_second_after_expiry():
    invitation = InvitationFactory(created_at=NOW - datetime.timedelta(days=7, seconds=1))
    checks = checks_by_label(diagnostics.diagnose(invitation.patient, now=NOW))
    assert checks["The link has not expired"].ok is False
    assert "Resend" in checks["The link has not expired"].fix


def test_a_link_one_second_before_expiry_still_works():
    invitation = InvitationFactory(created_at=NOW - datetime.timedelta(days=7) + datetime.timedelta(seconds=1))
    assert checks_by_label(diagnostics.diagnose(invitation.patient, now=NOW))["The link has not expired"].ok is True


def test_a_revoked_invitation():
    invitation = InvitationFactory()
    invitation.revoke(NOW, reason=RevokeReason.EMAIL_CHANGED)
    check = checks_by_label(diagnostics.diagnose(invitation.patient, now=NOW))["The link was not revoked"]
    assert check.ok is False and "email" in check.detail.lower()


def test_a_failed_send():
    invitation = InvitationFactory(status=Status.PENDING, sent_at=None, token_hash=None)
    invitation.fail(NOW, reason="The email service refused the address")
    check = checks_by_label(diagnostics.diagnose(invitation.patient, now=NOW))["It was handed to the email service"]
    assert check.ok is False and "refused" in check.detail


def test_a_send_waiting_too_long_points_at_the_workers():
    invitation = InvitationFactory(status=Status.PENDING, sent_at=None, token_hash=None, created_at=NOW - datetime.timedelta(minutes=30))
    check = checks_by_label(diagnostics.diagnose(invitation.patient, now=NOW))["It was handed to the email service"]
    assert check.ok is False and "worker" in check.fix


def test_services_fail_without_worker_and_with_broker_down():
    patient = PatientFactory()
    with override_settings(CELERY_BROKER_URL="redis://127.0.0.1:1/0", CELERY_BROKER_TRANSPORT_OPTIONS={}):
        checks = checks_by_label(diagnostics.diagnose(patient, now=NOW))
    assert checks["The task queue (broker) is reachable"].ok is False
    assert checks["A background worker is running"].ok is False
    assert checks["Delivery reports arrive from the email service"].ok is None


def test_services_pass_with_a_live_worker_and_recent_reports():
    patient = PatientFactory()
    record_heartbeat("celery@w1", now=NOW - datetime.timedelta(seconds=20))
    report = store_once(provider="Postmark", event_id="x", event_type="delivered", message_id="", occurred_at=None)
    type(report).objects.filter(pk=report.pk).update(received_at=NOW - datetime.timedelta(hours=2))
    checks = checks_by_label(diagnostics.diagnose(patient, now=NOW))
    assert checks["A background worker is running"].ok is True
    assert checks["Delivery reports arrive from the email service"].ok is True


@override_settings(DEBUG=False, EMAIL_BACKEND="django.core.mail.backends.filebased.EmailBackend")
def test_a_file_email_backend_in_production_fails():
    checks = checks_by_label(diagnostics.diagnose(PatientFactory(), now=NOW))
    assert checks["Emails go to a real email service"].ok is False


def test_the_page_for_own_and_other_practice(client_a, practice_a, practice_b):
    mine = PatientFactory(practice=practice_a, email="")
    theirs = PatientFactory(practice=practice_b)
    response = client_a.get(reverse("admin:patients_patient_diagnostics", args=[mine.pk]))
    assert response.status_code == 200
    content = response.content.decode()
    assert "An email address is on the chart" in content and "✗ Fail" in content
    assert f"/admin/patients/patient/{mine.pk}/change/#id_email" in content
    assert client_a.get(reverse("admin:patients_patient_diagnostics", args=[theirs.pk])).status_code == 404


def test_the_chart_links_to_the_diagnostics(client_a, practice_a):
    patient = PatientFactory(practice=practice_a)
    content = client_a.get(reverse("admin:patients_patient_change", args=[patient.pk])).content.decode()
    assert reverse("admin:patients_patient_diagnostics", args=[patient.pk]) in content


# -- every line true for every kind of patient; the verdict on top ------------------------------


def test_a_patient_without_email_gets_no_tick_for_the_address_checks():
    patient = PatientFactory(email="")
    checks = checks_by_label(diagnostics.diagnose(patient, now=NOW))
    assert checks[rule_label("missing_email")].ok is False
    for code in ("invalid_email", "opted_out", "hard_bounce", "invited_recently"):
        check = checks[rule_label(code)]
        assert check.ok is None and check.not_checked, code
        assert "no email address" in check.detail


def test_an_invalid_address_is_still_checked_against_opt_outs_and_bounces():
    patient = PatientFactory()
    Patient.objects.filter(pk=patient.pk).update(email="no-at-sign.example.com")
    patient.refresh_from_db()
    checks = checks_by_label(diagnostics.diagnose(patient, now=NOW))
    assert checks[rule_label("invalid_email")].ok is False
    assert checks[rule_label("opted_out")].ok is True and checks[rule_label("hard_bounce")].ok is True


def test_never_invited_is_information_not_a_failed_check():
    diagnosis = diagnostics.diagnose(PatientFactory(), now=NOW)
    last = next(section for section in diagnosis if section.title == "Last invitation")
    assert [check.ok for check in last.checks] == [None]
    assert last.failing == 0


def test_an_existing_invitation_is_information_too():
    invitation = InvitationFactory(created_at=NOW - datetime.timedelta(days=2))
    checks = checks_by_label(diagnostics.diagnose(invitation.patient, now=NOW))
    assert checks["An invitation was made"].ok is None
    assert invitation.email in checks["An invitation was made"].detail


def test_an_eligible_patient_with_working_services_can_be_invited_now():
    record_heartbeat("celery@w1", now=NOW - datetime.timedelta(seconds=20))
    verdict = diagnostics.diagnose(PatientFactory(), now=NOW).verdict
    assert verdict.can_send_now is True
    assert verdict.headline.startswith("Yes")
    assert verdict.also_blocking == 0


def test_an_eligible_patient_without_a_worker_cannot_be_sent_an_email_yet():
    verdict = diagnostics.diagnose(PatientFactory(), now=NOW).verdict
    assert verdict.can_send_now is False
    assert verdict.headline.startswith("Not yet")
    assert "worker" in verdict.reason and "System status" in verdict.first_step


def _patient_of_kind(kind: str) -> Patient:
    patient = PatientFactory()
    if kind == "registered, and the practice switched off":
        _break("registered", patient)
        _break("invitations_disabled", patient)
    elif kind == "deceased, without email":
        _break("deceased", patient)
        _break("missing_email", patient)
    elif kind == "practice switched off, without email":
        _break("activation_email_disabled", patient)
        _break("missing_email", patient)
    elif kind == "bounced and opted out":
        _break("opted_out", patient)
        _break("hard_bounce", patient)
    else:
        _break(kind, patient)
    patient.refresh_from_db()
    patient.practice.refresh_from_db()
    return patient


@pytest.mark.parametrize(
    "kind, first",
    [
        ("missing_email", "missing_email"),
        ("invalid_email", "invalid_email"),
        ("opted_out", "opted_out"),
        ("hard_bounce", "hard_bounce"),
        ("registered, and the practice switched off", "registered"),
        ("deceased, without email", "deceased"),
        ("practice switched off, without email", "activation_email_disabled"),
        ("bounced and opted out", "opted_out"),
    ],
)
def test_the_verdict_says_no_and_names_what_to_do_first(kind, first):
    record_heartbeat("celery@w1", now=NOW - datetime.timedelta(seconds=20))
    patient = _patient_of_kind(kind)
    verdict = diagnostics.diagnose(patient, now=NOW).verdict
    failing = eligibility.reasons_for(patient, now=NOW)
    assert verdict.can_send_now is False
    assert verdict.headline == "No: an invitation cannot be sent now."
    assert verdict.also_blocking == len(failing) - 1
    if first != "open_invitation":
        assert verdict.reason == eligibility.RULES_BY_CODE[first].message
        assert verdict.first_step == diagnostics.RULE_CHECKS[first][1]


def test_a_working_link_sent_within_the_hour_needs_no_new_invitation_and_nothing_else_blocks():
    record_heartbeat("celery@w1", now=NOW - datetime.timedelta(seconds=20))
    patient = _patient_of_kind("invited_recently")
    verdict = diagnostics.diagnose(patient, now=NOW).verdict
    assert verdict.headline == "No new invitation is needed: the patient already has a working link."
    assert verdict.tone == "info" and verdict.also_blocking == 0 and "once the hour is up" in verdict.first_step


def test_a_working_link_sent_within_the_hour_does_not_promise_a_resend_now():
    patient = _patient_of_kind("invited_recently")
    diagnosis = diagnostics.diagnose(patient, now=NOW)
    check = checks_by_label(diagnosis)[rule_label("open_invitation")]
    assert "once the hour is up" in check.fix
    hour_up = NOW - datetime.timedelta(minutes=10) + eligibility.RECENT_INVITATION_WINDOW
    assert diagnostics._when(hour_up, patient.practice.time_zone) in check.fix
    assert "use Resend" not in check.fix + check.detail
    assert "use Resend" not in diagnosis.verdict.reason + diagnosis.verdict.first_step


def test_a_working_link_older_than_an_hour_can_be_resent_now():
    patient = _patient_of_kind("open_invitation")
    diagnosis = diagnostics.diagnose(patient, now=NOW)
    assert checks_by_label(diagnosis)[rule_label("open_invitation")].fix == diagnostics.RULE_CHECKS["open_invitation"][1]
    assert diagnosis.verdict.tone == "info" and "Resend can replace it" in diagnosis.verdict.headline


def test_an_expired_link_of_a_deceased_patient_does_not_say_use_resend():
    invitation = InvitationFactory(created_at=NOW - datetime.timedelta(days=8))
    Patient.objects.filter(pk=invitation.patient_id).update(deceased=True)
    check = checks_by_label(diagnostics.diagnose(Patient.objects.get(pk=invitation.patient_id), now=NOW))["The link has not expired"]
    assert check.ok is False
    assert check.fix == diagnostics.SEE_VERDICT


def test_a_link_revoked_by_an_opt_out_does_not_say_use_resend():
    invitation = InvitationFactory(created_at=NOW - datetime.timedelta(days=2))
    EmailOptOut.objects.create(practice=invitation.practice, email=invitation.email)  # revokes the open link
    check = checks_by_label(diagnostics.diagnose(invitation.patient, now=NOW))["The link was not revoked"]
    assert check.ok is False and "opt-out" in check.detail
    assert check.fix == diagnostics.SEE_VERDICT


def test_a_bounce_to_an_address_corrected_since_asks_for_no_fix():
    invitation = InvitationFactory(created_at=NOW - datetime.timedelta(days=2))
    invitation.record(EventKind.BOUNCED, now=NOW, detail="550")
    invitation.fail(NOW, reason="The email service reported: bounced (550)")
    Patient.objects.filter(pk=invitation.patient_id).update(email="corrected@example.com", bounced_email=invitation.email)
    patient = Patient.objects.get(pk=invitation.patient_id)
    checks = checks_by_label(diagnostics.diagnose(patient, now=NOW))
    assert checks[rule_label("hard_bounce")].ok is True
    assert checks["It did not bounce"].fix == ""
    assert "changed since" in checks["An invitation was made"].detail


def _row(content: str, label: str) -> str:
    start = content.index(f"<strong>{label}</strong>")
    return content[content.rindex("<tr>", 0, start):start]


def test_the_page_for_a_patient_without_email(client_a, practice_a):
    patient = PatientFactory(practice=practice_a, email="")
    content = client_a.get(reverse("admin:patients_patient_diagnostics", args=[patient.pk])).content.decode()
    assert "✓" not in _row(content, rule_label("invalid_email"))
    assert "Not checked" in _row(content, rule_label("invalid_email"))
    assert "✗" not in _row(content, "No invitation has been made for this patient")
    assert "No: an invitation cannot be sent now." in content
    assert diagnostics.RULE_CHECKS["missing_email"][1] in content
    assert "Last invitation</h2>" in content  # no "(1 failed)" beside it
