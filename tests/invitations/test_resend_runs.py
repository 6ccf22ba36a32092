"""New links for several selected patients (the patient list's and the failed list's Resend): one
resend run per practice, sent by a worker like Activate Now, with a progress page that reads done only
when every link is sent, failed or skipped."""

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.core import mail
from django.urls import reverse

from invitations.bulk import runs
from invitations.models.bulk_runs import BulkRun, BulkRunKind, BulkRunStatus
from invitations.models import EventKind, Invitation, RevokeReason, Source, Status
from patients.audit import AuditAction, AuditEntry
from patients.models import Role
from tests.clock import NOW
from tests.factories import PatientFactory, staff_member
from tests.invitations.factories import InvitationFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("frozen")]

HOUR_AGO = NOW.replace(hour=NOW.hour - 2)


def failed_invitation(practice, **patient_fields) -> Invitation:
    invitation = InvitationFactory(patient=PatientFactory(practice=practice, **patient_fields), created_at=HOUR_AGO)
    invitation.fail(HOUR_AGO, reason="The email service reported: bounced")
    return invitation


def resend(client, patients, capture):
    url = reverse("admin:patients_patient_changelist")
    data = {"action": "resend_selected", ACTION_CHECKBOX_NAME: [p.pk for p in patients], "confirm": "yes"}
    with capture(execute=True):
        return client.post(url, data)


def test_resending_several_patients_is_one_run_sent_in_the_background(
    client_a, practice_a, front_desk_a, eager_celery, django_capture_on_commit_callbacks
):
    failed = [failed_invitation(practice_a, email=f"fixed{i}@example.com") for i in range(3)]
    out = InvitationFactory(patient=PatientFactory(practice=practice_a), created_at=HOUR_AGO)  # a link that works
    patients = [i.patient for i in failed] + [out.patient]
    response = resend(client_a, patients, django_capture_on_commit_callbacks)

    run = BulkRun.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse("admin:invitations_bulkrun_progress", args=[run.pk])
    assert (run.kind, run.started_by, sorted(run.selected_patient_ids)) == (
        BulkRunKind.RESEND, front_desk_a, sorted(p.pk for p in patients)
    )
    assert (run.status, run.targeted, run.sent) == (BulkRunStatus.DONE, 4, 4)
    assert sorted(m.to[0] for m in mail.outbox) == sorted(p.email for p in patients)
    out.refresh_from_db()
    assert (out.status, out.revoke_reason) == (Status.REVOKED, RevokeReason.RESENT)  # the old link stops working
    assert out.events.filter(kind=EventKind.REVOKED, actor=front_desk_a).exists()
    new = Invitation.objects.filter(source=Source.BULK_RESEND)
    assert new.count() == 4 and set(new.values_list("status", flat=True)) == {Status.SENT}
    assert AuditEntry.objects.filter(action=AuditAction.RESEND, patient__in=patients).count() == 4
    page = client_a.get(response["Location"]).content.decode()
    assert "New links for selected patients" in page and "Summary" in page


def test_a_resend_run_goes_beside_activate_now_and_skips_with_reasons(
    client_a, practice_a, eager_celery, django_capture_on_commit_callbacks
):
    failed = failed_invitation(practice_a)
    no_consent = failed_invitation(practice_a, email_consent=False)
    with django_capture_on_commit_callbacks(execute=False):
        activate = runs.start_run(practice=practice_a, now=NOW)  # planned, its chunk not sent yet
    resend(client_a, [failed.patient, no_consent.patient], django_capture_on_commit_callbacks)
    run = BulkRun.objects.get(kind=BulkRunKind.RESEND)
    assert activate.is_running and run.pk != activate.pk
    assert (run.targeted, run.skip_counts) == (1, {"no_consent": 1})


def test_one_run_per_practice_for_a_selection_across_offices(
    practice_a, practice_b, client, eager_celery, django_capture_on_commit_callbacks
):
    manager = staff_member(practice_a, Role.MANAGER, username="two_offices")
    from patients.models import Membership

    Membership.objects.create(user=manager, practice=practice_b, role=Role.FRONT_DESK)
    client.force_login(manager)
    patients = [failed_invitation(practice_a).patient, failed_invitation(practice_b).patient, failed_invitation(practice_b).patient]
    response = resend(client, patients, django_capture_on_commit_callbacks)
    assert response["Location"] == reverse("admin:invitations_bulkrun_changelist")
    assert sorted(BulkRun.objects.values_list("practice_id", "targeted")) == sorted([(practice_a.pk, 1), (practice_b.pk, 2)])


def test_a_viewer_cannot_resend_and_nothing_runs(practice_a, client, django_capture_on_commit_callbacks):
    viewer = staff_member(practice_a, Role.VIEWER, username="viewer_a")
    client.force_login(viewer)
    patients = [failed_invitation(practice_a).patient, failed_invitation(practice_a).patient]
    response = resend(client, patients, django_capture_on_commit_callbacks)
    assert not BulkRun.objects.exists()
    assert response.status_code in (200, 302, 403)


def test_another_practices_patients_cannot_be_slipped_into_a_resend_run(
    practice_a, practice_b, django_capture_on_commit_callbacks
):
    theirs = failed_invitation(practice_b)
    with django_capture_on_commit_callbacks(execute=True):
        run = runs.start_run(
            practice=practice_a, now=NOW, kind=BulkRunKind.RESEND, patient_ids=[theirs.patient_id, failed_invitation(practice_a).patient_id],
        )
    run.refresh_from_db()
    assert run.targeted == 1
    theirs.refresh_from_db()
    assert theirs.status == Status.FAILED and not Invitation.objects.filter(patient=theirs.patient, source=Source.BULK_RESEND).exists()
