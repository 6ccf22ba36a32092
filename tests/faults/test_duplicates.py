"""Fault injection with real workers: duplicated task deliveries send nothing twice."""

import pytest
from django.utils import timezone

from invitations import services
from invitations.models import Invitation, Source, Status
from invitations.tasks import send_invitation
from tests.factories import PatientFactory
from tests.workers import sent_to, wait_until

pytestmark = [pytest.mark.faults, pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def test_the_same_send_task_delivered_three_times_sends_one_email(celery_worker, mail_dir, django_capture_on_commit_callbacks):
    patients = [PatientFactory(email=f"dup{i}@example.com") for i in range(5)]
    with django_capture_on_commit_callbacks(execute=False):  # we enqueue by hand, three times each
        invitations = [services.invite(p, now=timezone.now(), actor=None, source=Source.MANUAL).invitation for p in patients]
    for _ in range(3):
        for invitation in invitations:
            send_invitation.delay(invitation.pk)
    wait_until(lambda: Invitation.objects.filter(status=Status.SENT).count() == 5, message="five invitations sent")
    # Give the duplicate deliveries time to run (they find nothing to claim).
    wait_until(lambda: celery_worker.log().count("succeeded") >= 15, timeout=30, message="all fifteen task runs")
    assert sent_to(mail_dir) == {f"dup{i}@example.com": 1 for i in range(5)}
