"""Activate Now's engine: preview counts, planning into chunks, set-based chunk processing, and
its safety (one run at a time, duplicate task deliveries, a worker dying half way)."""

import datetime

import pytest
from django.core import mail
from django.core.mail.backends.locmem import EmailBackend as LocmemBackend
from django.db import IntegrityError

from invitations.bulk import chunks, runs
from invitations.models import (
    EventKind,
    Invitation,
    InvitationEvent,
    InvitationTemplate,
    Source,
    Status,
)
from invitations.models.bulk_runs import (
    CHUNK_LEASE,
    BulkRun,
    BulkRunChunk,
    BulkRunKind,
    BulkRunStatus,
    ChunkStatus,
)
from patients.models import EmailOptOut
from tests.clock import NOW
from tests.factories import PatientFactory, PracticeFactory, UserFactory
from tests.faults.backends import DyingBackend, WorkerDied
from tests.invitations.factories import InvitationFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("frozen")]


def recipients() -> list[str]:
    return sorted(address for message in mail.outbox for address in message.to)


# -- preview -----------------------------------------------------------------------------------


def test_it_previews_how_many_are_invited_and_why_the_others_are_skipped(practice):
    for _ in range(3):
        PatientFactory(practice=practice)
    PatientFactory(practice=practice, email="")
    PatientFactory.create_batch(2, practice=practice, email_consent=False)
    PatientFactory(practice=practice, deceased=True)
    opted = PatientFactory(practice=practice)
    EmailOptOut.objects.create(practice=practice, email=opted.email)
    InvitationFactory(patient=PatientFactory(practice=practice), created_at=NOW - datetime.timedelta(days=1))
    registered = PatientFactory(practice=practice, portal_user=UserFactory())
    PatientFactory(practice=PracticeFactory())  # another practice: never counted

    preview = runs.preview(practice, now=NOW)

    assert preview.considered == 9  # inactive patients only
    assert preview.eligible == 3
    assert preview.skipped == 6
    assert preview.skip_counts == {
        "missing_email": 1, "no_consent": 2, "deceased": 1, "opted_out": 1, "open_invitation": 1,
    }
    assert [rule.code for rule, _ in preview.reasons][0] == "no_consent"  # largest first

    # The registered patient was left out for having a portal account, and for nothing else.
    registered.portal_user = None
    registered.save()
    without_the_account = runs.preview(practice, now=NOW)
    assert (without_the_account.considered, without_the_account.eligible) == (10, 4)


# -- a whole run -------------------------------------------------------------------------------


def test_a_run_invites_each_targeted_patient_once_with_one_email_each(
    practice, eager_celery, django_capture_on_commit_callbacks
):
    staff = UserFactory()
    patients = PatientFactory.create_batch(7, practice=practice)
    PatientFactory(practice=practice, email_consent=False)
    with django_capture_on_commit_callbacks(execute=True):
        run = runs.start_run(practice=practice, now=NOW, actor=staff, chunk_size=3)

    run.refresh_from_db()
    assert run.status == BulkRunStatus.DONE
    assert run.finished_at == NOW
    assert (run.considered, run.targeted, run.invited, run.sent, run.failed) == (8, 7, 7, 7, 0)
    assert run.skip_counts == {"no_consent": 1}
    assert list(run.chunks.values_list("number", "size", "status")) == [(1, 3, "done"), (2, 3, "done"), (3, 1, "done")]

    assert recipients() == sorted(p.email for p in patients)
    invitations = Invitation.objects.filter(practice=practice)
    assert invitations.count() == 7
    assert set(invitations.values_list("status", "source", "created_by", "is_latest", "sent_at")) == {
        (Status.SENT, Source.BULK, staff.pk, True, NOW)
    }
    assert all(len(i.token_hash) == 64 and i.provider_message_id for i in invitations)
    kinds = sorted(InvitationEvent.objects.filter(invitation__practice=practice).values_list("kind", flat=True))
    assert kinds == [EventKind.CREATED] * 7 + [EventKind.SENT] * 7
    # The email is the same one a single invite sends: generic subject, personal link.
    message = mail.outbox[0]
    assert message.subject == "Your patient portal invitation from Maple Street Dental"
    assert "https://portal.example.test/invite/" in message.body
    assert "https://portal.example.test/invite/" in message.alternatives[0][0]


def test_a_run_replaces_a_link_that_ran_out_and_keeps_one_latest_invitation(practice, django_capture_on_commit_callbacks):
    patient = PatientFactory(practice=practice)
    old = InvitationFactory(patient=patient, created_at=NOW - datetime.timedelta(days=8))  # run out, not swept
    with django_capture_on_commit_callbacks(execute=False):
        run = runs.start_run(practice=practice, now=NOW)
    assert chunks.process_chunk(run.chunks.get().pk, now=NOW) == "done"
    old.refresh_from_db()
    assert old.status == Status.EXPIRED and not old.is_latest
    assert Invitation.objects.get(patient=patient, is_latest=True).status == Status.SENT


def test_a_patient_who_became_ineligible_after_planning_is_skipped(practice, django_capture_on_commit_callbacks):
    keep, lost = PatientFactory.create_batch(2, practice=practice)
    with django_capture_on_commit_callbacks(execute=False):
        run = runs.start_run(practice=practice, now=NOW)
    lost.email_consent = False
    lost.save()
    chunks.process_chunk(run.chunks.get().pk, now=NOW)
    run.refresh_from_db()
    assert recipients() == [keep.email]
    assert (run.targeted, run.invited, run.sent, run.skipped_at_send) == (2, 1, 1, 1)


def test_an_empty_run_is_finished_at_once(practice, django_capture_on_commit_callbacks):
    PatientFactory(practice=practice, deceased=True)
    with django_capture_on_commit_callbacks(execute=True):
        run = runs.start_run(practice=practice, now=NOW)
    assert run.status == BulkRunStatus.DONE
    assert run.targeted == 0 and not run.chunks.exists()


def test_chunks_are_enqueued_only_after_the_transaction_commits(practice, django_capture_on_commit_callbacks, monkeypatch):
    PatientFactory.create_batch(5, practice=practice)
    enqueued = []
    monkeypatch.setattr("invitations.tasks.process_bulk_chunk.apply_async", lambda args, **kw: enqueued.append(args[0]))
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        run = runs.start_run(practice=practice, now=NOW, chunk_size=2)
    assert enqueued == []
    for callback in callbacks:
        callback()
    assert enqueued == list(run.chunks.order_by("number").values_list("pk", flat=True))
    assert len(enqueued) == 3


def test_a_permanent_refusal_fails_that_invitation_and_the_others_are_sent(practice, settings, django_capture_on_commit_callbacks):
    from anymail.exceptions import AnymailRecipientsRefused

    good, bad = PatientFactory(practice=practice), PatientFactory(practice=practice)

    class Refusing(LocmemBackend):
        def send_messages(self, messages):
            if messages[0].to == [bad.email]:
                raise AnymailRecipientsRefused("refused")
            return super().send_messages(messages)

    settings.EMAIL_BACKEND = f"{__name__}.Refusing"
    globals()["Refusing"] = Refusing
    with django_capture_on_commit_callbacks(execute=False):
        run = runs.start_run(practice=practice, now=NOW)
    chunks.process_chunk(run.chunks.get().pk, now=NOW)
    run.refresh_from_db()
    assert recipients() == [good.email]
    assert Invitation.objects.get(patient=bad).status == Status.FAILED
    assert (run.sent, run.failed, run.status) == (1, 1, BulkRunStatus.DONE)


# -- safety ------------------------------------------------------------------------------------


def test_a_second_run_while_one_runs_is_refused(practice, django_capture_on_commit_callbacks):
    PatientFactory.create_batch(2, practice=practice)
    with django_capture_on_commit_callbacks(execute=False):
        first = runs.start_run(practice=practice, now=NOW)
        with pytest.raises(runs.RunAlreadyRunning):
            runs.start_run(practice=practice, now=NOW)
        # Another practice is not held up.
        runs.start_run(practice=PracticeFactory(), now=NOW)
    assert BulkRun.objects.filter(practice=practice).count() == 1
    assert first.status == BulkRunStatus.RUNNING


def test_the_database_refuses_two_running_runs_of_one_practice(practice):
    BulkRun.objects.create(practice=practice, created_at=NOW)
    BulkRun.objects.create(practice=practice, created_at=NOW, status=BulkRunStatus.DONE)
    with pytest.raises(IntegrityError):
        BulkRun.objects.create(practice=practice, created_at=NOW, kind=BulkRunKind.MONTHLY)


def test_a_chunk_delivered_twice_sends_nothing_twice(practice, django_capture_on_commit_callbacks):
    PatientFactory.create_batch(4, practice=practice)
    with django_capture_on_commit_callbacks(execute=False):
        run = runs.start_run(practice=practice, now=NOW)
    chunk = run.chunks.get()
    assert chunks.process_chunk(chunk.pk, now=NOW) == "done"
    assert chunks.process_chunk(chunk.pk, now=NOW) == "not-claimed"
    assert chunks.process_chunk(chunk.pk, now=NOW + CHUNK_LEASE * 2) == "not-claimed"  # done stays done
    assert len(mail.outbox) == 4
    assert Invitation.objects.count() == 4


def test_a_chunk_being_processed_is_not_taken_by_a_second_delivery(practice, django_capture_on_commit_callbacks):
    PatientFactory.create_batch(2, practice=practice)
    with django_capture_on_commit_callbacks(execute=False):
        run = runs.start_run(practice=practice, now=NOW)
    chunk = run.chunks.get()
    assert chunks.claim_chunk(chunk.pk, now=NOW)  # a worker holds it
    assert chunks.process_chunk(chunk.pk, now=NOW + CHUNK_LEASE - datetime.timedelta(seconds=1)) == "not-claimed"
    assert mail.outbox == []


@pytest.mark.parametrize("survive", [0, 2])
def test_a_worker_dying_half_way_is_resumed_by_the_sweep_without_duplicates(
    practice, settings, monkeypatch, frozen, django_capture_on_commit_callbacks, survive
):
    """The worker dies after creating the invitations (survive=0) or after two emails went out
    (survive=2; sent marks are written after every email here, as a slow email service would
    cause). The chunk keeps its claim; the sweep re-enqueues it once the lease has run out."""
    patients = PatientFactory.create_batch(5, practice=practice)
    monkeypatch.setattr(chunks, "MARK_SENT_EVERY_SECONDS", 0)
    settings.PORTAL_SEND_CONCURRENCY = 1  # one email at a time, so "after two" is a known point
    settings.EMAIL_BACKEND = "tests.faults.backends.DyingBackend"
    DyingBackend.survive = survive
    with django_capture_on_commit_callbacks(execute=False):
        run = runs.start_run(practice=practice, now=NOW)
    chunk = run.chunks.get()
    with pytest.raises(WorkerDied):
        chunks.process_chunk(chunk.pk, now=NOW)
    chunk.refresh_from_db()
    assert chunk.status == ChunkStatus.CLAIMED
    assert Invitation.objects.filter(status=Status.PENDING).count() == 5 - survive
    assert len(mail.outbox) == survive

    DyingBackend.survive = 10**6  # the next worker lives
    enqueued = []
    monkeypatch.setattr("invitations.tasks.process_bulk_chunk.apply_async", lambda args, **kw: enqueued.append(args[0]))
    just_before = NOW + CHUNK_LEASE - datetime.timedelta(seconds=1)
    with django_capture_on_commit_callbacks(execute=True):
        assert runs.resume_stalled(now=just_before) == 0
    later = NOW + CHUNK_LEASE
    frozen.move_to(later)
    with django_capture_on_commit_callbacks(execute=True):
        assert runs.resume_stalled(now=later) == 1
    assert enqueued == [chunk.pk]
    assert chunks.process_chunk(chunk.pk, now=later) == "done"

    assert recipients() == sorted(p.email for p in patients)  # each exactly once
    assert Invitation.objects.count() == 5
    assert set(Invitation.objects.values_list("status", flat=True)) == {Status.SENT}
    run.refresh_from_db()
    assert (run.status, run.invited, run.sent) == (BulkRunStatus.DONE, 5, 5)
    chunk.refresh_from_db()
    assert chunk.attempts == 2


def test_the_sweep_reenqueues_a_pending_chunk_whose_message_was_lost(practice, monkeypatch, django_capture_on_commit_callbacks):
    PatientFactory(practice=practice)
    with django_capture_on_commit_callbacks(execute=False):
        run = runs.start_run(practice=practice, now=NOW)  # the enqueue never happens
    enqueued = []
    monkeypatch.setattr("invitations.tasks.process_bulk_chunk.apply_async", lambda args, **kw: enqueued.append(args[0]))
    with django_capture_on_commit_callbacks(execute=True):
        assert runs.resume_stalled(now=NOW + runs.REENQUEUE_PENDING_AFTER - datetime.timedelta(seconds=1)) == 0
        assert runs.resume_stalled(now=NOW + runs.REENQUEUE_PENDING_AFTER) == 1
    assert enqueued == [run.chunks.get().pk]


def test_a_run_confirmed_in_the_admin_is_planned_once_by_a_worker(practice, monkeypatch, django_capture_on_commit_callbacks):
    PatientFactory.create_batch(3, practice=practice)
    planned = []
    monkeypatch.setattr("invitations.tasks.plan_bulk_run.apply_async", lambda args, **kw: planned.append(args[0]))
    with django_capture_on_commit_callbacks(execute=True):
        run = runs.start_run(practice=practice, now=NOW, plan_later=True)
    assert planned == [run.pk] and not run.chunks.exists()
    with django_capture_on_commit_callbacks(execute=False):
        assert runs.plan_run(run.pk, now=NOW, chunk_size=2) is True
        assert runs.plan_run(run.pk, now=NOW, chunk_size=2) is False  # a redelivered planning task
    run.refresh_from_db()
    assert (run.targeted, run.planned_at, run.chunks.count()) == (3, NOW, 2)


def test_the_sweep_plans_a_run_whose_planning_was_lost_and_never_closes_it_unplanned(
    practice, monkeypatch, django_capture_on_commit_callbacks
):
    PatientFactory(practice=practice)
    with django_capture_on_commit_callbacks(execute=False):
        run = runs.start_run(practice=practice, now=NOW, plan_later=True)  # the task is lost
    planned = []
    monkeypatch.setattr("invitations.tasks.plan_bulk_run.apply_async", lambda args, **kw: planned.append(args[0]))
    with django_capture_on_commit_callbacks(execute=True):
        assert runs.resume_stalled(now=NOW + runs.REPLAN_AFTER - datetime.timedelta(seconds=1)) == 0
    run.refresh_from_db()
    assert run.status == BulkRunStatus.RUNNING  # no chunks yet is not "all chunks done"
    with django_capture_on_commit_callbacks(execute=True):
        assert runs.resume_stalled(now=NOW + runs.REPLAN_AFTER) == 1
    assert planned == [run.pk]


def test_a_run_finished_by_its_last_chunk_is_closed_by_the_sweep_too(practice, django_capture_on_commit_callbacks):
    PatientFactory(practice=practice)
    with django_capture_on_commit_callbacks(execute=False):
        run = runs.start_run(practice=practice, now=NOW)
    BulkRunChunk.objects.filter(run=run).update(status=ChunkStatus.DONE)  # its worker died after the chunk
    runs.resume_stalled(now=NOW)
    run.refresh_from_db()
    assert run.status == BulkRunStatus.DONE


# -- set-based: queries per chunk do not grow with its size -----------------------------------


def _chunk_queries(size: int, capture) -> int:
    practice = PracticeFactory()
    PatientFactory.create_batch(size, practice=practice)
    # One link that ran out unswept, so the expiry step does its work too.
    InvitationFactory(patient=PatientFactory(practice=practice), created_at=NOW - datetime.timedelta(days=8))
    with capture(execute=False):
        run = runs.start_run(practice=practice, now=NOW)
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        assert chunks.process_chunk(run.chunks.get().pk, now=NOW) == "done"
    run.refresh_from_db()
    assert run.sent == size + 1
    return statements(captured.captured_queries)


def statements(queries) -> int:
    """Queries, counting one bulk INSERT split into batches as one statement: SQLite caps the
    parameters per statement (PostgreSQL inserts the whole chunk in one)."""
    count, previous = 0, None
    for query in queries:
        sql = query["sql"]
        head = sql[:60] if sql.startswith("INSERT") else None
        if head is None or head != previous:
            count += 1
        previous = head
    return count


def test_a_chunk_uses_a_bounded_number_of_queries_whatever_its_size(
    django_capture_on_commit_callbacks, django_assert_max_num_queries
):
    small = _chunk_queries(5, django_capture_on_commit_callbacks)
    large = _chunk_queries(120, django_capture_on_commit_callbacks)
    assert small <= 46
    # Set-based: only the sent-marks repeat, once per MARK_SENT_EVERY_MESSAGES emails (the
    # invitations, their events, the chunk's figures and a progress tick, in one transaction),
    # so a chunk of the configured size (500) runs a bounded number of queries. (+8: with no
    # sending rate in force, the shared rate is read a few times a second, whatever the size.)
    assert small <= large <= small + 7 * (120 // chunks.MARK_SENT_EVERY_MESSAGES) + 8


@pytest.mark.postgres
def test_on_postgresql_a_chunk_of_any_size_runs_a_bounded_number_of_queries(django_capture_on_commit_callbacks):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    counts = []
    for size in (5, 300):
        practice = PracticeFactory()
        PatientFactory.create_batch(size, practice=practice)
        with django_capture_on_commit_callbacks(execute=False):
            run = runs.start_run(practice=practice, now=NOW)
        with CaptureQueriesContext(connection) as captured:
            chunks.process_chunk(run.chunks.get().pk, now=NOW)
        counts.append(len(captured))
    # Each mark: the invitations, their events, the chunk's figures and a progress tick (+8: the
    # shared sending rate is read a few times a second).
    assert counts[0] <= 40 and counts[0] <= counts[1] <= counts[0] + 7 * (300 // chunks.MARK_SENT_EVERY_MESSAGES) + 8


@pytest.mark.postgres
def test_on_postgresql_a_chunk_of_500_runs_its_fixed_set_of_queries(
    django_capture_on_commit_callbacks, django_assert_max_num_queries, monkeypatch
):
    """The per-chunk queries, guarded so they cannot creep back: claim the chunk, read it and the
    wording; lock, expire, check and create the 500 (one statement each, the patients as one array);
    count once when they exist; five marks of 100 (the invitations and their events, one transaction
    each, no savepoints); count once at the end of the send (and at most every couple of seconds
    between); finish the chunk and the run, and ask for the dashboard's recount. 32 statements,
    whatever the practice's size (in a test's transaction each transaction of the chunk is also a
    savepoint and its release: 14 more)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    monkeypatch.setattr(chunks, "RECOUNT_EVERY_SECONDS", 3600.0)  # a slow test machine counts no extra
    practice = PracticeFactory()
    PatientFactory.create_batch(runs.CHUNK_SIZE, practice=practice)
    with django_capture_on_commit_callbacks(execute=False):
        run = runs.start_run(practice=practice, now=NOW)
    chunk = run.chunks.get()
    # +8: the shared sending rate may be read a few times a second
    with CaptureQueriesContext(connection) as captured, django_assert_max_num_queries(32 + 14 + 8):
        assert chunks.process_chunk(chunk.pk, now=NOW) == "done"
    statements = [q["sql"] for q in captured.captured_queries if "SAVEPOINT" not in q["sql"][:20]]
    assert len(statements) <= 32 + 8
    assert sum(sql.startswith("SELECT \"invitations_invitation\".\"practice_id\"") for sql in statements) == 3  # the counts
    run.refresh_from_db()
    assert (run.sent, run.emails_sent) == (runs.CHUNK_SIZE, runs.CHUNK_SIZE)
    assert len(mail.outbox) == runs.CHUNK_SIZE


@pytest.mark.parametrize("first_name", ["Zoë", "Ann <b>& \"Bo\"", ""])
def test_a_chunk_renders_its_template_once_with_the_same_result_as_a_single_email(practice, first_name):
    from invitations.wording import invitation_email

    practice.contact_phone = "(617) 555-0142"
    link = "https://portal.example.test/invite/abcDEF123_-x/"
    expires_at = NOW + datetime.timedelta(days=7)
    template = InvitationTemplate.default()
    single = invitation_email.render(practice=practice, first_name=first_name, link=link, expires_at=expires_at, template=template)
    prepared = invitation_email.PreparedEmail(practice=practice, expires_at=expires_at, template=template)
    assert prepared.fill(first_name=first_name, link=link) == single
    assert prepared.link("abcDEF123_-x") == invitation_email.registration_url("abcDEF123_-x")
    assert prepared.from_email == invitation_email.from_address(practice)
