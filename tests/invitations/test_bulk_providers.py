"""A bulk run's chunk against email providers as they are: anymail's real backends talking to the
local stand-in of the provider's API, with latency, 429s, outages, a refused account and refused
addresses. A run is done only when every patient was sent an invitation, failed with a reason, or
skipped; nobody is emailed twice; every emailed link is the one its invitation will accept."""

import datetime
import re

import pytest

from invitations.admin.bulk_runs import BulkRunAdmin
from invitations.bulk import chunks, runs
from invitations.models import (
    SEND_GIVE_UP_AFTER,
    EventKind,
    Invitation,
    Status,
    hash_token,
)
from invitations.models.bulk_runs import BulkRunStatus, BulkRunTick, ChunkStatus
from tests.clock import NOW
from tests.factories import PatientFactory
from tests.invitations.bulk_texting import run_until_done, start_held_run

pytestmark = pytest.mark.django_db

LINK = re.compile(r"/invite/([A-Za-z0-9_-]{20,})/")


@pytest.fixture
def enqueued_chunks(monkeypatch):
    """Chunk tasks the code hands on (the broker is not needed to see them)."""
    calls = []
    monkeypatch.setattr("invitations.tasks.process_bulk_chunk.apply_async", lambda args, **kw: calls.append(args[0]))
    return calls


def assert_each_patient_got_one_working_link(standin, patients):
    """Every patient got exactly one email, and its link is the token their sent invitation holds."""
    accepted = standin.accepted()
    assert sorted(m["to"] for m in accepted) == sorted(p.email for p in patients)
    for message in accepted:
        token = LINK.search(message["text"]).group(1)
        assert LINK.search(message["html"]).group(1) == token
        invitation = Invitation.objects.get(token_hash=hash_token(token))
        assert (invitation.email, invitation.status) == (message["to"], Status.SENT)
        assert message["metadata"] == {"invitation": str(invitation.public_id)} | (
            {"anymail_id": message["metadata"]["anymail_id"]} if "anymail_id" in message["metadata"] else {}
        )


@pytest.mark.parametrize("provider", ["postmark", "amazon_ses", "mailgun", "sendgrid"])
def test_a_chunk_sends_each_patient_their_own_link_through_the_real_backend(
    practice, use_provider, provider, frozen, django_capture_on_commit_callbacks
):
    standin = use_provider(provider)
    patients = PatientFactory.create_batch(12, practice=practice)
    run = start_held_run(practice, django_capture_on_commit_callbacks)
    assert run_until_done(run, on_commit=True, capture=django_capture_on_commit_callbacks) == ["done"]
    assert_each_patient_got_one_working_link(standin, patients)
    run.refresh_from_db()
    assert (run.status, run.sent, run.failed) == (BulkRunStatus.DONE, 12, 0)
    assert not BulkRunTick.objects.filter(run=run).exists()  # progress ticks end with the run
    # One call per email, or one batch call for the chunk.
    assert standin.stats()["requests"] == (1 if provider in ("mailgun", "sendgrid") else 12)
    assert Invitation.objects.exclude(provider_message_id="").count() == 12


def test_a_batch_provider_sends_family_members_sharing_an_address_their_own_links(
    practice, use_provider, frozen, django_capture_on_commit_callbacks
):
    standin = use_provider("mailgun")
    family = [PatientFactory(practice=practice, email="family@example.com", first_name=name) for name in ("Ann", "Bo")]
    others = PatientFactory.create_batch(3, practice=practice)
    run = start_held_run(practice, django_capture_on_commit_callbacks)
    run_until_done(run, on_commit=True, capture=django_capture_on_commit_callbacks)
    assert_each_patient_got_one_working_link(standin, family + others)
    greetings = sorted(m["text"].split(",")[0] for m in standin.accepted() if m["to"] == "family@example.com")
    assert greetings == ["Hello Ann", "Hello Bo"]
    assert standin.stats()["requests"] == 2


def test_throttling_by_the_provider_is_retried_inside_the_run_and_nobody_fails(
    practice, use_provider, ticking, django_capture_on_commit_callbacks
):
    """The provider allows 25 calls a second; we set no rate of our own. The 429s slow the
    sender down and are sent again in the same chunk: no task per message, no failure."""
    standin = use_provider("postmark")
    standin.configure(rate_limit=25, burst=5)
    patients = PatientFactory.create_batch(40, practice=practice)
    run = start_held_run(practice, django_capture_on_commit_callbacks)
    assert run_until_done(run, on_commit=True, capture=django_capture_on_commit_callbacks) == ["done"]
    stats = standin.stats()
    assert stats["throttled"] > 0
    assert_each_patient_got_one_working_link(standin, patients)
    run.refresh_from_db()
    assert (run.status, run.sent, run.failed) == (BulkRunStatus.DONE, 40, 0)


def test_a_chunk_whose_time_runs_out_hands_the_rest_on_at_once_and_the_run_waits_for_it(
    practice, use_provider, monkeypatch, enqueued_chunks, frozen, django_capture_on_commit_callbacks
):
    standin = use_provider("postmark")
    standin.configure(latency=0.1)
    monkeypatch.setattr(chunks, "SEND_SECONDS", 0.35)
    monkeypatch.setattr("django.conf.settings.PORTAL_SEND_CONCURRENCY", 2)
    patients = PatientFactory.create_batch(20, practice=practice)
    run = start_held_run(practice, django_capture_on_commit_callbacks)
    chunk = run.chunks.get()

    with django_capture_on_commit_callbacks(execute=True):
        assert chunks.process_chunk(chunk.pk, now=NOW) == "continued"
    chunk.refresh_from_db()
    sent_first = standin.stats()["messages"]
    assert 2 <= sent_first < 20
    assert chunk.status == ChunkStatus.PENDING and enqueued_chunks == [chunk.pk]  # handed on at once
    assert (chunk.sent, chunk.invited, chunk.waiting) == (sent_first, 20, 0)
    assert Invitation.objects.filter(status=Status.SENT).count() == sent_first
    unsent = Invitation.objects.filter(status=Status.PENDING)
    assert unsent.count() == 20 - sent_first and not unsent.filter(sending_started_at__isnull=False).exists()
    # Never tried: no "sending delayed" entry on their timelines.
    assert not Invitation.objects.filter(events__kind=EventKind.SEND_RETRY).exists()
    run.refresh_from_db()
    assert run.is_running
    progress = BulkRunAdmin.progress_data(run)
    assert (progress["finished"], progress["sent"], progress["processed"]) == (False, sent_first, sent_first)
    assert progress["rate"] > 0 and progress["seconds_left"] > 0 and progress["time_left"]

    outcomes = run_until_done(run, on_commit=True, capture=django_capture_on_commit_callbacks)
    assert outcomes[-1] == "done" and set(outcomes[:-1]) <= {"continued"}
    assert_each_patient_got_one_working_link(standin, patients)
    assert standin.stats()["invitations_emailed_twice"] == 0
    run.refresh_from_db()
    assert (run.status, run.sent) == (BulkRunStatus.DONE, 20)


def test_an_outage_defers_the_chunk_and_it_finishes_when_the_service_is_back(
    practice, use_provider, monkeypatch, frozen, django_capture_on_commit_callbacks
):
    standin = use_provider("postmark")
    monkeypatch.setattr("core.sending.engine.RETRY_WAITS", ())  # no retry inside the chunk
    standin.configure(fail_next=1000)
    patients = PatientFactory.create_batch(4, practice=practice)
    run = start_held_run(practice, django_capture_on_commit_callbacks)
    chunk = run.chunks.get()
    with pytest.raises(chunks.ChunkDeferred, match="HTTP 503"):
        chunks.process_chunk(chunk.pk, now=NOW)
    chunk.refresh_from_db()
    assert (chunk.status, chunk.waiting, chunk.waiting_since) == (ChunkStatus.PENDING, 4, NOW)
    assert Invitation.objects.filter(status=Status.PENDING, sending_started_at__isnull=True).count() == 4
    assert Invitation.objects.filter(events__kind=EventKind.SEND_RETRY, events__detail__contains="HTTP 503").count() == 4
    run.refresh_from_db()
    progress = BulkRunAdmin.progress_data(run)
    assert progress["waiting"] == 4 and "HTTP 503" in progress["send_problem"] and not progress["finished"]

    standin.configure(fail_next=0)
    assert run_until_done(run, on_commit=True, capture=django_capture_on_commit_callbacks) == ["done"]
    assert_each_patient_got_one_working_link(standin, patients)
    run.refresh_from_db()
    assert (run.status, run.sent, run.failed) == (BulkRunStatus.DONE, 4, 0)


def test_a_refused_account_fails_no_patient_and_stops_after_one_call(
    practice, use_provider, frozen, django_capture_on_commit_callbacks
):
    standin = use_provider("postmark")
    standin.configure(auth_fail=True)
    PatientFactory.create_batch(30, practice=practice)
    run = start_held_run(practice, django_capture_on_commit_callbacks)
    with pytest.raises(chunks.ChunkDeferred, match="HTTP 401"):
        chunks.process_chunk(run.chunks.get().pk, now=NOW)
    assert standin.stats()["requests"] <= 16
    assert not Invitation.objects.filter(status=Status.FAILED).exists()
    run.refresh_from_db()
    assert run.is_running and "HTTP 401" in run.send_problem


def test_hours_of_refusals_fail_the_chunks_invitations_with_the_reason(
    practice, use_provider, frozen, django_capture_on_commit_callbacks
):
    standin = use_provider("postmark")
    standin.configure(auth_fail=True)
    PatientFactory.create_batch(3, practice=practice)
    run = start_held_run(practice, django_capture_on_commit_callbacks)
    chunk = run.chunks.get()
    with pytest.raises(chunks.ChunkDeferred):
        chunks.process_chunk(chunk.pk, now=NOW)
    almost = NOW + SEND_GIVE_UP_AFTER - datetime.timedelta(minutes=1)
    frozen.move_to(almost)
    with pytest.raises(chunks.ChunkDeferred):
        chunks.process_chunk(chunk.pk, now=almost)
    later = NOW + SEND_GIVE_UP_AFTER
    frozen.move_to(later)
    with django_capture_on_commit_callbacks(execute=False):
        assert chunks.process_chunk(chunk.pk, now=later) == "gave-up"
    reasons = set(Invitation.objects.values_list("status", "failure_reason"))
    assert len(reasons) == 1
    status, reason = reasons.pop()
    assert status == Status.FAILED and reason.startswith("Gave up after the email service refused for 3 hours") and "HTTP 401" in reason
    run.refresh_from_db()
    assert (run.status, run.failed, run.sent) == (BulkRunStatus.DONE, 3, 0)


def test_addresses_the_provider_refuses_fail_with_the_reason_and_the_others_go(
    practice, use_provider, frozen, django_capture_on_commit_callbacks
):
    standin = use_provider("mailgun")  # one bad address makes Mailgun refuse the whole batch
    good = PatientFactory.create_batch(5, practice=practice)
    bad = PatientFactory(practice=practice, email="invalid.mailbox@example.com")
    run = start_held_run(practice, django_capture_on_commit_callbacks)
    run_until_done(run, on_commit=True, capture=django_capture_on_commit_callbacks)
    assert_each_patient_got_one_working_link(standin, good)
    failed = Invitation.objects.get(patient=bad)
    assert failed.status == Status.FAILED and "HTTP 400" in failed.failure_reason
    run.refresh_from_db()
    assert (run.status, run.sent, run.failed) == (BulkRunStatus.DONE, 5, 1)


def test_progress_counts_the_current_rate_and_the_time_left(practice, frozen, django_capture_on_commit_callbacks):
    PatientFactory.create_batch(3, practice=practice)
    run = start_held_run(practice, django_capture_on_commit_callbacks)
    run.targeted = 1000
    run.save(update_fields=["targeted"])
    run.chunks.update(sent=400)
    for seconds, settled in ((-60, 300), (-15, 50), (-5, 50)):
        BulkRunTick.objects.create(run=run, at=NOW + datetime.timedelta(seconds=seconds), settled=settled)
    progress = runs.run_progress(run, now=NOW)
    assert progress.rate == pytest.approx(100 / 20)  # the last 20 seconds: 100 settled
    assert progress.seconds_left == pytest.approx(600 / 5)
    assert BulkRunAdmin.progress_data(run)["time_left"] == "about 2 minutes"


# -- one invitation per patient per run, whatever happens between attempts ---------------------


def test_a_later_attempt_never_invites_again_a_patient_this_run_already_invited(
    practice, use_provider, monkeypatch, enqueued_chunks, frozen, django_capture_on_commit_callbacks
):
    """A resend run's chunk handed on at its deadline and resumed hours later (behind a big run):
    the patients it already emailed, or whose address was refused, are not invited again."""
    from invitations.models.bulk_runs import BulkRunKind

    standin = use_provider("postmark")
    standin.configure(latency=0.1)
    monkeypatch.setattr(chunks, "SEND_SECONDS", 0.35)
    monkeypatch.setattr("django.conf.settings.PORTAL_SEND_CONCURRENCY", 2)
    patients = PatientFactory.create_batch(12, practice=practice)
    refused = PatientFactory(practice=practice, email="invalid.box@example.com")
    with django_capture_on_commit_callbacks(execute=False):
        run = runs.start_run(practice=practice, now=NOW, kind=BulkRunKind.RESEND, patient_ids=[p.pk for p in patients + [refused]])
    chunk = run.chunks.get()
    with django_capture_on_commit_callbacks(execute=True):
        assert chunks.process_chunk(chunk.pk, now=NOW) == "continued"
    later = NOW + datetime.timedelta(hours=2)
    frozen.move_to(later)
    outcomes = run_until_done(run, on_commit=True, capture=django_capture_on_commit_callbacks, now=later)
    assert outcomes[-1] == "done"
    assert standin.stats()["recipients_emailed_twice"] == 0
    assert Invitation.objects.filter(patient=refused).count() == 1
    assert all(Invitation.objects.filter(patient=p).count() == 1 for p in patients)
    run.refresh_from_db()
    assert (run.sent, run.failed) == (12, 1)


def test_a_chunk_is_never_done_while_one_of_its_invitations_is_pending(
    practice, use_provider, monkeypatch, enqueued_chunks, frozen, django_capture_on_commit_callbacks
):
    """A safety net under the sending engine: were an invitation ever lost between its lists (it should
    not be), the chunk is handed on instead of read as done."""
    use_provider("postmark")
    PatientFactory.create_batch(3, practice=practice)
    run = start_held_run(practice, django_capture_on_commit_callbacks)
    real_send = chunks._send

    def lose_one(outgoing, **kwargs):
        return real_send(outgoing[1:], **kwargs)

    monkeypatch.setattr(chunks, "_send", lose_one)
    with django_capture_on_commit_callbacks(execute=True):
        assert chunks.process_chunk(run.chunks.get().pk, now=NOW) == "continued"
    run.refresh_from_db()
    assert run.is_running and run.chunks.get().status == ChunkStatus.PENDING


def test_a_chunk_that_cannot_get_a_sending_slot_waits_for_it_instead_of_spinning(
    practice, use_provider, monkeypatch, django_capture_on_commit_callbacks
):
    from core.sending import ratelimit

    use_provider("postmark")
    monkeypatch.setattr(chunks, "SEND_SECONDS", 1.0)
    ratelimit.limiter("email").slow_down(120)  # the provider asked the account to wait two minutes
    PatientFactory.create_batch(3, practice=practice)
    run = start_held_run(practice, django_capture_on_commit_callbacks)
    countdowns = []
    monkeypatch.setattr(
        "invitations.tasks.process_bulk_chunk.apply_async", lambda args, **kw: countdowns.append(kw.get("countdown"))
    )
    with django_capture_on_commit_callbacks(execute=True):
        assert chunks.process_chunk(run.chunks.get().pk, now=NOW) == "waiting"
    assert len(countdowns) == 1 and 100 < countdowns[0] <= 120


def test_a_chunk_taken_over_after_its_lease_leaves_the_new_owners_claims_alone(
    practice, use_provider, monkeypatch, frozen, django_capture_on_commit_callbacks
):
    from invitations.models.bulk_runs import BulkRunChunk

    use_provider("postmark")
    monkeypatch.setattr(chunks, "SEND_SECONDS", 0.0)  # hands everything on
    PatientFactory.create_batch(2, practice=practice)
    run = start_held_run(practice, django_capture_on_commit_callbacks)
    chunk = run.chunks.get()
    real_send = chunks._send

    def taken_over_meanwhile(outgoing, **kwargs):
        report = real_send(outgoing, **kwargs)
        BulkRunChunk.objects.filter(pk=chunk.pk).update(claimed_at=NOW + datetime.timedelta(minutes=11))
        return report

    monkeypatch.setattr(chunks, "_send", taken_over_meanwhile)
    assert chunks.process_chunk(chunk.pk, now=NOW) == "taken-over"
    assert Invitation.objects.filter(status=Status.PENDING, sending_started_at=NOW).count() == 2  # untouched


def test_a_delivery_report_without_metadata_finds_its_invitation_in_a_shared_batch_id(practice):
    from invitations import services
    from tests.invitations.factories import InvitationFactory

    first = InvitationFactory(patient=PatientFactory(practice=practice, email="a@example.com"), provider_message_id="<batch@mg>")
    InvitationFactory(patient=PatientFactory(practice=practice, email="b@example.com"), provider_message_id="<batch@mg>")
    assert services.find_for_tracking(metadata={}, message_id="<batch@mg>", recipient="A@example.com") == first
    assert services.find_for_tracking(metadata={}, message_id="<batch@mg>") is None  # two match: neither
