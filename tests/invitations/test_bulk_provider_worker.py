"""Activate Now with a real prefork Celery worker sending through anymail's real Postmark backend to
the local provider stand-in: a provider that throttles, and one so slow that a chunk cannot finish
inside the task's time limit. The run is shown done only when every email went, none went twice,
and no chunk is cut by the time limit."""

import pytest
from django.utils import timezone

from invitations.bulk import runs
from invitations.models.bulk_runs import BulkRun, BulkRunChunk, BulkRunStatus
from invitations.models import Invitation, Status
from tests.factories import PatientFactory, PracticeFactory
from tests.provider_standin import anymail_environment
from tests.workers import mail_dir, start_worker, wait_until  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def provider_env(standin, **extra) -> dict:
    env = anymail_environment(standin.url, "postmark")
    return {"TEST_EMAIL_BACKEND": "anymail.backends.postmark.EmailBackend", **env, **extra}


def patients(n: int):
    practice = PracticeFactory(name="Worker Dental")
    for i in range(n):
        PatientFactory(practice=practice, email=f"w{i}@example.com")
    return practice


def watch_until_done(run: BulkRun, standin, *, timeout: float) -> int:
    """Poll the run like the progress page; return how many emails the provider had taken at the
    moment the run first read as done."""
    seen = {}

    def done() -> bool:
        run.refresh_from_db()
        if run.status == BulkRunStatus.DONE:
            seen["messages"] = standin.stats()["messages"]
            return True
        return False

    wait_until(done, timeout=timeout, interval=0.2, message="the run to finish")
    return seen["messages"]


def test_a_throttling_provider_slows_the_run_but_it_finishes_honestly(start_worker, standin):
    """30 calls a second allowed by the provider, none configured by us: 429s come back, every
    throttled email is sent again inside its chunk, and the run reads done only after the last."""
    standin.configure(latency=0.03, rate_limit=30, burst=5)
    practice = patients(80)
    start_worker(concurrency=2, pool="prefork", **provider_env(standin))
    run = runs.start_run(practice=practice, now=timezone.now(), chunk_size=40, plan_later=True)
    messages_when_done = watch_until_done(run, standin, timeout=120)
    stats = standin.stats()
    assert stats["throttled"] > 0
    assert messages_when_done == stats["messages"] == 80  # never shown done early
    assert stats["recipients_emailed_twice"] == 0 and stats["invitations_emailed_twice"] == 0
    assert (run.sent, run.failed, run.targeted) == (80, 0, 80)
    assert set(Invitation.objects.values_list("status", flat=True)) == {Status.SENT}


def test_a_slow_provider_never_makes_a_chunk_outlive_its_time_limit(start_worker, standin, tmp_path):
    """700 ms a call, a 4-second soft limit: each chunk stops starting emails after its budget,
    records them and hands the rest on at once. No chunk is cut, nobody is emailed twice."""
    standin.configure(latency=0.7)
    practice = patients(30)
    worker = start_worker(
        concurrency=2, pool="prefork",
        **provider_env(standin, CELERY_TASK_SOFT_TIME_LIMIT="4", CELERY_TASK_TIME_LIMIT="8",
                       ANYMAIL_REQUESTS_TIMEOUT="2", PORTAL_SEND_CONCURRENCY="4"),
    )
    run = runs.start_run(practice=practice, now=timezone.now(), chunk_size=15, plan_later=True)
    messages_when_done = watch_until_done(run, standin, timeout=120)
    stats = standin.stats()
    assert messages_when_done == stats["messages"] == 30
    assert stats["recipients_emailed_twice"] == 0
    assert run.failed == 0
    assert sum(BulkRunChunk.objects.filter(run=run).values_list("attempts", flat=True)) > 2  # handed on
    log = worker.log()
    assert "SoftTimeLimitExceeded" not in log and "TimeLimitExceeded" not in log


def test_the_soft_time_limit_arriving_mid_send_is_not_a_send_error(start_worker, standin):
    """A deadline set beyond the soft limit (a misconfiguration): the soft limit fires while
    emails are in flight. They finish and are recorded, the rest is handed on; nothing fails and
    nobody is emailed twice."""
    standin.configure(latency=0.5)
    practice = patients(24)
    worker = start_worker(
        concurrency=2, pool="prefork",
        **provider_env(standin, CELERY_TASK_SOFT_TIME_LIMIT="3", CELERY_TASK_TIME_LIMIT="10",
                       ANYMAIL_REQUESTS_TIMEOUT="2", PORTAL_SEND_CONCURRENCY="2", PORTAL_BULK_SEND_SECONDS="60"),
    )
    run = runs.start_run(practice=practice, now=timezone.now(), chunk_size=12, plan_later=True)
    messages_when_done = watch_until_done(run, standin, timeout=120)
    stats = standin.stats()
    assert messages_when_done == stats["messages"] == 24
    assert stats["recipients_emailed_twice"] == 0 and run.failed == 0
    assert "soft time limit reached while sending" in worker.log()
    assert "Hard time limit" not in worker.log()
