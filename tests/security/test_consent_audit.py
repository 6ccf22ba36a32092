"""Every consent change is in the practice's audit trail: the patient's own (email preferences, the
email service's unsubscribe), besides STOP and START (tests/invitations/test_text_replies.py), staff's
opt-out lists and chart edits (tests/patients/test_audit.py) and CSV imports
(tests/patients/test_csv_import*.py)."""

import pytest
from django.urls import reverse

from invitations import services
from patients.audit import AuditAction, AuditEntry
from patients.models import EmailOptOut, OptOutReason
from tests.clock import NOW
from tests.factories import PatientFactory, UserFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("frozen")]


def trail(practice):
    return list(AuditEntry.objects.filter(practice=practice).order_by("id").values_list("action", "actor", "summary"))


def test_the_patient_stopping_and_resuming_emails_is_audited(client, practice_a):
    user = UserFactory(username="paula.p", is_staff=False)
    PatientFactory(practice=practice_a, email="paula@example.com", portal_user=user)
    client.force_login(user)
    page = reverse("portal:email_preferences")
    assert client.post(page, {"action": "stop"}).status_code == 302
    assert EmailOptOut.objects.filter(practice=practice_a, email="paula@example.com").exists()
    assert client.post(page, {"action": "resume"}).status_code == 302
    assert not EmailOptOut.objects.exists()
    assert trail(practice_a) == [
        (AuditAction.OPT_OUT_ADDED, None, "Added paula@example.com (Patient asked to stop emails)"),
        (AuditAction.OPT_OUT_REMOVED, None, "Removed paula@example.com (the patient asked for emails again)"),
    ]


def test_an_unsubscribe_from_the_email_service_is_audited_once(practice_a):
    services.opt_out(practice=practice_a, email="Paula@Example.com", now=NOW, reason=OptOutReason.SPAM_COMPLAINT)
    services.opt_out(practice=practice_a, email="paula@example.com", now=NOW)  # already on the list
    [(action, actor, summary)] = trail(practice_a)
    assert action == AuditAction.OPT_OUT_ADDED and actor is None and summary.startswith("Added paula@example.com (")
