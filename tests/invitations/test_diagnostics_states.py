"""Every state a patient's invitation can be in, rendered on "Why no invite?" and on the patient's
page, checked for contradictions: a row's title and its verdict and detail agree, the headline
agrees with the rows, a channel the invitation does not use is information and never "cannot be
sent", the two pages read the same, and a patient never gets both "Send" and "Resend"."""

import datetime
import re

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from invitations import diagnostics, eligibility
from invitations.models import EventKind, InvitationEvent, RevokeReason, Status
from patients.jobs import record_heartbeat
from patients.models import EmailOptOut, Patient, Role
from tests.clock import NOW
from tests.factories import PatientFactory, staff_member
from tests.invitations.factories import InvitationFactory

pytestmark = pytest.mark.django_db
MOBILE = "+16175550123"
MINUTES = datetime.timedelta(minutes=1)
DAYS = datetime.timedelta(days=1)


def _allow_texts(patient, *, mobile=True, consent=True):
    patient.practice.text_invitations_enabled = True
    patient.practice.save()
    Patient.objects.filter(pk=patient.pk).update(mobile_phone=MOBILE if mobile else "", sms_consent=consent)


def _update(patient, **fields):
    Patient.objects.filter(pk=patient.pk).update(**fields)


def _bounced_invitation(patient, *, email=None):
    invitation = InvitationFactory(
        patient=patient, email=email or patient.email, status=Status.FAILED, created_at=NOW - 2 * DAYS,
        failure_reason="The email service reported: bounced (550 mailbox unavailable)",
    )
    InvitationEvent.objects.create(invitation=invitation, kind=EventKind.BOUNCED, at=NOW - 2 * DAYS, detail="550")
    return invitation


def _bounced(patient, texts: bool):
    _bounced_invitation(patient)
    _update(patient, bounced_email=patient.email)
    if texts:
        _allow_texts(patient)


def _bounce_corrected(patient):
    _bounced_invitation(patient, email="old.address@example.com")
    _update(patient, bounced_email="old.address@example.com")


STATES = {
    "fine, texts off": lambda p: None,
    "fine, texts on, no mobile": lambda p: _allow_texts(p, mobile=False),
    "fine, texts on, mobile and consent": lambda p: _allow_texts(p),
    "fine, texts on, mobile without consent": lambda p: _allow_texts(p, consent=False),
    "bounced, texts off": lambda p: _bounced(p, texts=False),
    "bounced, texts on with a mobile": lambda p: _bounced(p, texts=True),
    "bounce corrected since": _bounce_corrected,
    "just invited by email, texts on, no mobile": lambda p: (_allow_texts(p, mobile=False), InvitationFactory(patient=p, created_at=NOW - 10 * MINUTES)),
    "just invited by email, texts off": lambda p: InvitationFactory(patient=p, created_at=NOW - 10 * MINUTES),
    "link out for two days, texts on, no mobile": lambda p: (_allow_texts(p, mobile=False), InvitationFactory(patient=p, created_at=NOW - 2 * DAYS)),
    "link revoked by staff": lambda p: InvitationFactory(patient=p, status=Status.REVOKED, revoke_reason=RevokeReason.STAFF, created_at=NOW - 2 * DAYS),
    "sending failed": lambda p: InvitationFactory(patient=p, status=Status.FAILED, sent_at=None, failure_reason="Refused by the email service.", created_at=NOW - DAYS),
    "link expired": lambda p: InvitationFactory(patient=p, created_at=NOW - 9 * DAYS),
    "being sent for too long": lambda p: InvitationFactory(patient=p, status=Status.PENDING, sent_at=None, created_at=NOW - 20 * MINUTES),
    "registered": lambda p: _update(p, portal_user=get_user_model().objects.create(username=f"p{p.pk}")),
    "deceased": lambda p: _update(p, deceased=True),
    "no email, texts on with a mobile": lambda p: (_update(p, email=""), _allow_texts(p)),
    "no email, texts on, no mobile": lambda p: (_update(p, email=""), _allow_texts(p, mobile=False)),
    "no email, texts off": lambda p: _update(p, email=""),
    "opted out, texts on with a mobile": lambda p: (EmailOptOut.objects.create(practice=p.practice, email=p.email), _allow_texts(p)),
    "no email consent, texts off": lambda p: _update(p, email_consent=False),
    "missing first name": lambda p: _update(p, first_name=""),
    "invited by text a moment ago": lambda p: (_update(p, email=""), _allow_texts(p), InvitationFactory(
        patient=p, email="", by_email=False, by_text=True, text_to=MOBILE, text_status="queued", sent_at=None,
        created_at=NOW - 10 * MINUTES)),
}


def checks_of(diagnosis, *, rules_only=False):
    sections = diagnosis[: len(diagnostics.SECTIONS)] if rules_only else diagnosis
    return [check for section in sections for check in section.checks]


FINDINGS = {rule.message.rstrip("."): code for code, rule in eligibility.RULES_BY_CODE.items()}
PASSING = {label: code for code, (label, _fix, _where) in diagnostics.RULE_CHECKS.items()}


@pytest.fixture
def desk(client, frozen):
    record_heartbeat("celery@worker-1", now=NOW - 20 * datetime.timedelta(seconds=1))
    return client


@pytest.mark.parametrize("state", STATES)
def test_no_state_contradicts_itself(desk, state):
    patient = PatientFactory()
    STATES[state](patient)
    patient.refresh_from_db()
    patient.practice.refresh_from_db()
    desk.force_login(staff_member(patient.practice, Role.FRONT_DESK))
    reading = diagnostics.outlook(patient, now=NOW)
    diagnosis = diagnostics.diagnose(patient, now=NOW)
    verdict = diagnosis.verdict

    # A row titled by what passing means is a tick, a cross or "not checked", never information
    # that says the opposite; a row titled by what it found is a rule that found it.
    for check in checks_of(diagnosis, rules_only=True):
        if check.label in PASSING:
            code = PASSING[check.label]
            if reading.verdicts.get(code):
                assert check.ok is False or check.not_checked, (state, check)
            else:
                assert check.ok or check.not_checked, (state, check)
        else:
            assert check.label in FINDINGS and reading.verdicts.get(FINDINGS[check.label]), (state, check)
            assert check.ok is None, (state, check)
            assert any(words in check.detail for words in ("cannot be used", "not possible", "go by email only")), (state, check)

    # The headline agrees with the rows.
    failed = [check for check in checks_of(diagnosis, rules_only=True) if check.ok is False]
    for section in diagnosis:
        assert section.failing == sum(1 for check in section.checks if check.ok is False)
    if verdict.headline.startswith("Yes"):
        assert failed == [] and verdict.can_send_now, state
        by = " and ".join(diagnostics.Channel(c).label.lower() for c in reading.channels)
        assert f"by {by}" in verdict.headline
        assert (" only." in verdict.headline) == bool(reading.unusable)
    elif verdict.headline.startswith("No new invitation is needed"):
        assert {PASSING[c.label] for c in failed} <= {"open_invitation", *diagnostics.EMAIL_WAITS}, state
        assert verdict.also_blocking == 0
    elif verdict.headline.startswith("No:"):
        assert failed and verdict.also_blocking == len(failed) - 1, (state, failed)
    else:
        assert verdict.headline.startswith("Not yet") and failed == []

    # A text rule blocks only when email cannot be used for good.
    email_for_good = any(
        reading.verdicts.get(code) and rule.channel == "email" and code not in diagnostics.EMAIL_WAITS
        for code, rule in eligibility.RULES_BY_CODE.items()
    )
    if not email_for_good:
        assert not any(PASSING.get(c.label) in diagnostics.TEXT_RULES for c in failed), (state, failed)

    # The last invitation's bounce reads the same verdict as the "has not bounced" row.
    last = {check.label: check for check in diagnosis[-2].checks}
    if "It did not bounce" in last:
        corrected = "no longer marked as bounced" in last["It did not bounce"].detail
        assert corrected == (not reading.verdicts.get("hard_bounce")), state

    # The patient's page reads the same: no "cannot be sent" when an invitation can go or the
    # patient already has a working link, and one button to send a link, never two.
    page = desk.get(reverse("admin:patients_patient_change", args=[patient.pk])).content.decode()
    box = page[page.index('id="portal-invitation"'): page.index("</section>", page.index('id="portal-invitation"'))]
    if verdict.headline.startswith(("Yes", "No new invitation is needed")):
        assert "An invitation cannot be sent now" not in box, (state, box)
    if "An invitation cannot be sent now" in box:
        listed = re.search(r"cannot be sent now:</strong></p>\s*<ul[^>]*>(.*?)</ul>", box, re.S).group(1)
        if not email_for_good:
            assert "Mobile phone number is missing" not in listed and "text messages" not in listed, (state, listed)
    assert not ('value="Send portal invitation"' in box and 'value="Resend (new link)…"' in box), state
    assert box.count("Mobile phone number is missing") <= 1, (state, box)
    diagnostics_page = desk.get(reverse("admin:patients_patient_diagnostics", args=[patient.pk])).content.decode()
    assert verdict.headline in diagnostics_page


def test_the_bounced_patient_of_the_issue_reads_one_way(desk):
    """Her email bounced; the practice texts and she has a mobile: an invitation can go, by text
    only; the bounce row fails... as information, titled by what it found; the history agrees."""
    patient = PatientFactory()
    _bounced(patient, texts=True)
    patient.refresh_from_db()
    diagnosis = diagnostics.diagnose(patient, now=NOW)
    assert diagnosis.verdict.headline == "Yes: an invitation can be sent now, by text message only."
    assert diagnosis.verdict.channels_note.startswith("Email cannot be used: Email to this address bounced permanently")
    labels = [check.label for check in checks_of(diagnosis)]
    assert "Email to this address has not bounced" not in labels
    assert "Email to this address bounced permanently; correct the address" in labels
    bounce = {check.label: check for check in diagnosis[-2].checks}["It did not bounce"]
    assert bounce.ok is False and "no longer marked as bounced" not in bounce.detail


def test_right_after_an_email_invitation_nothing_says_it_cannot_be_sent(desk):
    patient = PatientFactory()
    _allow_texts(patient, mobile=False)
    InvitationFactory(patient=patient, created_at=NOW - 2 * MINUTES)
    patient.refresh_from_db()
    desk.force_login(staff_member(patient.practice, Role.FRONT_DESK))
    verdict = diagnostics.diagnose(patient, now=NOW).verdict
    assert verdict.headline == "No new invitation is needed: the patient already has a working link."
    assert verdict.also_blocking == 0 and verdict.tone == "info"
    page = desk.get(reverse("admin:patients_patient_change", args=[patient.pk])).content.decode()
    assert "cannot be sent now" not in page
    assert page.count("Mobile phone number is missing") == 1  # once, about texts only
    assert "Text message cannot be used now: Mobile phone number is missing." in page


def test_a_texts_error_reads_as_one_sentence_without_doubled_punctuation(desk):
    from core.sending.errors import twilio_delivery_error

    patient = PatientFactory(email="")
    _allow_texts(patient)
    error = twilio_delivery_error(30006).detail
    InvitationFactory(
        patient=patient, email="", by_email=False, by_text=True, text_to=MOBILE, text_status="undelivered", sent_at=None,
        status=Status.FAILED, text_error=error, failure_reason=error, created_at=NOW - DAYS,
    )
    desk.force_login(staff_member(patient.practice, Role.FRONT_DESK))
    page = desk.get(reverse("admin:patients_patient_change", args=[patient.pk])).content.decode()
    assert f"Text message: Not delivered. {error}" in page and error.endswith("(Twilio error 30006).")
    for doubled in (".).", "..", ").)", ".)"):
        assert doubled not in re.sub(r"<[^>]+>", " ", page.split('id="portal-invitation"')[1].split("</section>")[0]), doubled
