"""A finished run's summary counts, per channel, what was sent: the emails written and the texts
Twilio took (an invitation by email and text counts under each), on the page and in its JSON."""

import re

import pytest
from django.core import mail
from django.urls import reverse

from invitations.bulk import runs
from patients.models import BulkChannels, Role
from tests.clock import NOW
from tests.factories import PatientFactory, staff_member
from tests.invitations import bulk_texting
from tests.invitations.bulk_texting import bulk_texting_practice, textable_patient

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("frozen")]
_twilio_server, twilio, fresh_sms_rate, quiet_twilio = (
    bulk_texting._twilio_server, bulk_texting.twilio, bulk_texting.fresh_sms_rate, bulk_texting.quiet_twilio,
)


def run_to_the_end(practice, capture):
    with capture(execute=True):
        run = runs.start_run(practice=practice, now=NOW, chunk_size=3)
    run.refresh_from_db()
    return run


def summary(client, run) -> str:
    page = client.get(reverse("admin:invitations_bulkrun_progress", args=[run.pk])).content.decode()
    text = re.search(r'<div id="run-summary"[^>]*>(.*?)</div>', page, re.S).group(1)
    return " ".join(re.sub(r"<[^>]+>", "", text).split())


@pytest.mark.parametrize("channels", [BulkChannels.EMAIL_THEN_TEXT, BulkChannels.BOTH])
def test_the_summary_counts_the_emails_and_texts_that_went_out(
    client, quiet_twilio, eager_celery, django_capture_on_commit_callbacks, channels
):
    practice = bulk_texting_practice(channels)
    for i in range(5):
        textable_patient(practice, email=f"both{i}@example.com")  # an email (and, under "both", a text)
    for _ in range(2):
        textable_patient(practice)  # no address: a text
    PatientFactory(practice=practice)  # an address but no mobile: an email only
    run = run_to_the_end(practice, django_capture_on_commit_callbacks)

    emails, texts = len(mail.outbox), len(quiet_twilio.accepted())
    assert (emails, texts) == ((6, 2) if channels == BulkChannels.EMAIL_THEN_TEXT else (6, 7))
    client.force_login(staff_member(practice, Role.ADMIN))
    assert f"{emails} invitation emails sent, 0 failed; {texts} texts sent, 0 failed." in summary(client, run)
    data = client.get(reverse("admin:invitations_bulkrun_progress_json", args=[run.pk])).json()
    assert (data["emails_sent"], data["texts_sent"], data["sent"]) == (emails, texts, run.invited)
    assert data["sent"] < emails + texts or channels == BulkChannels.EMAIL_THEN_TEXT  # invitations, not messages


def test_an_email_only_runs_summary_counts_its_emails(client, eager_celery, django_capture_on_commit_callbacks):
    practice = PatientFactory().practice
    for _ in range(3):
        PatientFactory(practice=practice)
    run = run_to_the_end(practice, django_capture_on_commit_callbacks)
    client.force_login(staff_member(practice, Role.ADMIN))
    text = summary(client, run)
    assert f"{len(mail.outbox)} invitation emails sent, 0 failed." in text and len(mail.outbox) == 4
    assert "texts sent" not in text
