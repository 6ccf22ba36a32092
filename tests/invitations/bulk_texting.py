"""Shared pieces of the bulk-run text tests (test_bulk_texts*.py): a practice that texts, patients
reachable by email, by text or both, a run driven chunk by chunk until done (or started and sent through at once: `run_now`), and what the Twilio
stand-in took checked against the database. The Twilio fixtures come from tests/core/conftest.py;
a test module imports them (with the `quiet_twilio` fixture) to use them."""

import itertools
import re

import pytest

from invitations.bulk import chunks, runs
from invitations.models import Channel, Invitation, Status, TextStatus
from invitations.models.bulk_runs import ChunkStatus
from patients.models import BulkChannels
from tests.clock import NOW
from tests.core import conftest as core_fixtures
from tests.factories import PatientFactory, PracticeFactory

# The Twilio stand-in's fixtures, bound here (not imported, so pyflakes sees no unused import) for
# the test modules that bind them in turn.
_twilio_server, twilio, fresh_sms_rate = core_fixtures._twilio_server, core_fixtures.twilio, core_fixtures.fresh_sms_rate

TEXT_LINK = re.compile(r"/t/([A-Za-z0-9_-]{20,})/")
_numbers = itertools.count(1000)


@pytest.fixture
def quiet_twilio(twilio, fresh_sms_rate):
    """The stand-in, without its status callbacks: they would go to PORTAL_BASE_URL, which no
    server answers in these tests (the callbacks have their own tests)."""
    twilio.configure(callbacks=False)
    return twilio


@pytest.fixture
def handed_on_chunks(monkeypatch):
    """Chunk tasks the code hands on, with their countdowns (the broker is not needed to see them)."""
    calls = []
    monkeypatch.setattr(
        "invitations.tasks.process_bulk_chunk.apply_async", lambda args, **kw: calls.append((args[0], kw.get("countdown")))
    )
    return calls


def bulk_texting_practice(channels: str = BulkChannels.EMAIL_THEN_TEXT, **fields):
    fields = {"name": "Maple Street Dental", "text_invitations_enabled": True, **fields}
    return PracticeFactory(bulk_channels=channels, **fields)


def next_mobile() -> str:
    return f"+1617555{next(_numbers) % 10000:04d}"


def textable_patient(practice, *, email: str = "", number: str = "", **fields):
    """A patient with text consent and a mobile number; no email address unless given."""
    fields = {"sms_consent": True, **fields}
    return PatientFactory(practice=practice, email=email, mobile_phone=number or next_mobile(), **fields)


def start_held_run(practice, capture, **kwargs):
    with capture(execute=False):
        return runs.start_run(practice=practice, now=NOW, **kwargs)


def run_until_done(run, *, capture, now=NOW, attempts: int = 60, on_commit: bool = False) -> list[str]:
    """What the worker does: process each chunk, again whenever it was handed on. What a chunk
    does after its commit (the tasks it enqueues) is held, or run with `on_commit`."""
    outcomes = []
    for _ in range(attempts):
        pending = list(run.chunks.exclude(status=ChunkStatus.DONE).values_list("pk", flat=True))
        if not pending:
            return outcomes
        for chunk_id in pending:
            try:
                with capture(execute=on_commit):
                    outcomes.append(chunks.process_chunk(chunk_id, now=now))
            except chunks.ChunkDeferred:
                outcomes.append("deferred")
    raise AssertionError(f"not done after {attempts} rounds: {outcomes[-5:]}")


def token_of(message: dict) -> str:
    return TEXT_LINK.search(message["body"]).group(1)


def assert_each_texted_once_with_a_working_link(standin, patients) -> None:
    """Every patient got exactly one text, and its link is the one their invitation accepts."""
    accepted = standin.accepted()
    assert sorted(m["to"] for m in accepted) == sorted(p.mobile_phone for p in patients)
    for message in accepted:
        invitation = Invitation.find_by_token(token_of(message))
        assert invitation is not None and invitation.found_via == Channel.TEXT
        assert (invitation.text_to, invitation.text_sid) == (message["to"], message["sid"])
        assert invitation.status == Status.SENT and invitation.text_status == TextStatus.QUEUED
        assert message["status_callback"].endswith(f"/twilio/text-status/?invitation={invitation.public_id}")


def run_now(practice, capture, **kwargs):
    """Start a run and let the (eager) worker send every chunk; the finished run."""
    with capture(execute=True):
        run = runs.start_run(practice=practice, now=NOW, **kwargs)
    run.refresh_from_db()
    return run
