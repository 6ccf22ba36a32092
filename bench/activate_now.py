"""Time Activate Now end to end on PostgreSQL + Redis + a real Celery worker (run by hand).

    .venv/bin/python bench/activate_now.py [--patients 100000] [--naive 1000] [--concurrency 2]

Defaults: DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench, CELERY_BROKER_URL=redis://127.0.0.1:6379/7.
Creates (once) a practice "Bench Activate Now" with --patients invitable patients, then:

1. the naive loop on a sample: one `services.invite` + send per patient, one at a time, the way
   django-invitations does it (emails sent in-process, eagerly);
2. Activate Now through the admin: the preview (GET) and the confirm (POST) requests are timed,
   then a worker started here (a subprocess) works through the chunks; the clock stops when the
   run is finished, i.e. every invitation is created and handed to the email backend.

The email backend (bench/email_backend.py) builds every message's MIME form and sends nothing.
Invitations, events and runs of the bench practice are deleted before each step; nothing else is.
"""

import argparse
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
BENCH_ENV = {
    "DJANGO_SETTINGS_MODULE": "portal_project.settings",
    "DATABASE_URL": os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/bench"),
    "CELERY_BROKER_URL": os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/7"),
    "EMAIL_BACKEND": "bench.email_backend.EmailBackend",
    "DJANGO_DEBUG": "false",
    "DJANGO_SECRET_KEY": os.environ.get("DJANGO_SECRET_KEY", "bench-only-secret-key-0123456789abcdefghijklmnop"),
    "DJANGO_ALLOWED_HOSTS": "testserver,localhost",
    "DJANGO_SECURE_SSL_REDIRECT": "false",
    "DJANGO_SECURE_COOKIES": "false",
    "PORTAL_VAR_DIR": os.environ.get("PORTAL_VAR_DIR", "/tmp/practice-portal-bench"),
    "LOG_LEVEL": "WARNING",
}
os.environ.update(BENCH_ENV)

import django  # noqa: E402

django.setup()

import datetime  # noqa: E402

from django.conf import settings  # noqa: E402

# Admin pages without collectstatic's manifest (the bench times views, not static files).
settings.STORAGES = {**settings.STORAGES, "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}

from django.contrib.auth import get_user_model  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.urls import reverse  # noqa: E402
from django.utils import timezone  # noqa: E402

from invitations import services  # noqa: E402
from invitations.bulk_models import BulkRun  # noqa: E402
from invitations.models import Source  # noqa: E402
from patients.models import BirthSex, Patient, Practice  # noqa: E402
from portal_project.celery import app as celery_app  # noqa: E402

PRACTICE_NAME = "Bench Activate Now"


def bench_practice(patients: int) -> Practice:
    practice, _ = Practice.objects.get_or_create(
        name=PRACTICE_NAME, defaults={"contact_email": "office@bench.example", "contact_phone": "(555) 010-0000"}
    )
    have = Patient.objects.filter(practice=practice).count()
    if have < patients:
        print(f"creating {patients - have:,} patients ...", flush=True)
        batch = []
        for i in range(have, patients):
            batch.append(
                Patient(
                    practice=practice, chart_number=f"B{i:07d}", first_name="Robin", last_name=f"Bench{i}",
                    date_of_birth=datetime.date(1980, 1, 1) + datetime.timedelta(days=i % 9000), zip_code="02139",
                    email=f"bench{i}@bench.example", birth_sex=BirthSex.FEMALE, email_consent=True,
                )
            )
            if len(batch) == 5000:
                Patient.objects.bulk_create(batch)
                batch = []
        Patient.objects.bulk_create(batch)
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE patients_patient")
    return practice


def reset(practice: Practice) -> None:
    with connection.cursor() as cursor:
        # Fresh statistics first: after a run the planner would otherwise think the tables empty.
        cursor.execute("ANALYZE invitations_invitation")
        cursor.execute("ANALYZE invitations_invitationevent")
        for sql in (
            "DELETE FROM invitations_invitationevent WHERE invitation_id IN (SELECT id FROM invitations_invitation WHERE practice_id = %s)",
            "UPDATE invitations_deliveryreport d SET invitation_id = NULL FROM invitations_invitation i WHERE d.invitation_id = i.id AND i.practice_id = %s",
            "DELETE FROM invitations_invitation WHERE practice_id = %s",
            "DELETE FROM invitations_bulkrunchunk c USING invitations_bulkrun r WHERE c.run_id = r.id AND r.practice_id = %s",
            "DELETE FROM invitations_bulkrun WHERE practice_id = %s",
        ):
            cursor.execute(sql, [practice.pk])
        # Without this, the next step would scan the deleted rows (and plan on stale numbers).
        for table in ("invitations_invitation", "invitations_invitationevent", "invitations_bulkrunchunk"):
            cursor.execute(f"VACUUM ANALYZE {table}")


def naive_loop(practice: Practice, sample: int, *, through_celery: bool) -> tuple[int, float]:
    """One invite + one send at a time, in this process: `services.invite` for each patient,
    its email sent right after the commit, either by the send task run eagerly (the app's own
    path) or by `services.deliver` called directly (django-invitations style, no queue)."""
    from django.db import transaction

    patients = list(Patient.objects.filter(practice=practice).select_related("practice").order_by("pk")[:sample])
    original = services.enqueue_on_commit
    if through_celery:
        celery_app.conf.task_always_eager = True
    else:
        services.enqueue_on_commit = lambda task, pk: transaction.on_commit(lambda: services.deliver(pk, now=timezone.now()))
    try:
        start = time.perf_counter()
        for patient in patients:
            outcome = services.invite(patient, now=timezone.now(), source=Source.MANUAL)
            assert outcome.created, outcome.reasons
        elapsed = time.perf_counter() - start
    finally:
        celery_app.conf.task_always_eager = False
        services.enqueue_on_commit = original
    sent = practice.invitations.filter(status="sent").count()
    assert sent == len(patients), (sent, len(patients))
    return len(patients), elapsed


def start_worker(concurrency: int) -> subprocess.Popen:
    import redis

    redis.Redis.from_url(BENCH_ENV["CELERY_BROKER_URL"]).flushdb()
    log = open(Path(BENCH_ENV["PORTAL_VAR_DIR"]) / "bench-worker.log", "w")
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "portal_project", "worker", "--pool", "prefork",
         "--concurrency", str(concurrency), "--loglevel", "WARNING",
         "--without-heartbeat", "--without-gossip", "--without-mingle"],
        cwd=ROOT, env={**os.environ, **BENCH_ENV}, stdout=log, stderr=subprocess.STDOUT,
    )
    from portal_project.celery import ping

    ping.apply_async(ignore_result=False).get(timeout=60)  # the worker is up and consuming
    return worker


def activate_now(practice: Practice, concurrency: int, timeout: float) -> dict:
    admin = get_user_model().objects.filter(is_superuser=True).first()
    client = Client()
    client.force_login(admin)
    url = reverse("admin:invitations_portal_activate", args=[practice.pk])
    worker = start_worker(concurrency)
    try:
        start = time.perf_counter()
        preview = client.get(url)
        preview_s = time.perf_counter() - start
        assert preview.status_code == 200, preview.status_code

        start = time.perf_counter()
        response = client.post(url)
        confirm_s = time.perf_counter() - start
        assert response.status_code == 302, response.status_code
        run = BulkRun.objects.filter(practice=practice).latest("created_at")
        while True:
            run.refresh_from_db(fields=["status", "finished_at"])
            if not run.is_running:
                break
            if time.perf_counter() - start > timeout:
                raise SystemExit(f"run {run.pk} not finished after {timeout} s")
            time.sleep(0.05)
        total_s = time.perf_counter() - start
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    run.refresh_from_db()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*), count(DISTINCT patient_id), count(*) FILTER (WHERE status = 'sent') "
            "FROM invitations_invitation WHERE practice_id = %s", [practice.pk],
        )
        made, patients, sent = cursor.fetchone()
    return {
        "preview_s": preview_s, "confirm_s": confirm_s, "total_s": total_s, "targeted": run.targeted,
        "made": made, "patients": patients, "sent": sent, "chunks": run.chunks.count(),
    }


def describe_machine() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        pg = cursor.fetchone()[0]
    import redis

    redis_version = redis.Redis.from_url(BENCH_ENV["CELERY_BROKER_URL"]).info().get("redis_version")
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), platform.processor())
    return f"{os.cpu_count()} cores ({cpu}), PostgreSQL {pg}, Redis {redis_version}, Python {platform.python_version()}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--patients", type=int, default=100_000)
    parser.add_argument("--naive", type=int, default=1000, help="sample size for the one-at-a-time loop")
    parser.add_argument("--concurrency", type=int, default=2, help="worker processes")
    parser.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args()

    print(describe_machine(), flush=True)
    practice = bench_practice(args.patients)
    rates = {}
    for through_celery in (False, True):
        reset(practice)
        naive_n, naive_s = naive_loop(practice, args.naive, through_celery=through_celery)
        rates[through_celery] = naive_n / naive_s
        label = "send task run eagerly" if through_celery else "services.deliver inline"
        print(f"naive loop ({label}): {naive_n:,} invitations in {naive_s:.1f} s = {rates[through_celery]:,.0f}/s "
              f"(would take {args.patients / rates[through_celery]:,.0f} s for {args.patients:,})", flush=True)
    naive_rate = max(rates.values())

    reset(practice)
    result = activate_now(practice, args.concurrency, args.timeout)
    rate = result["sent"] / result["total_s"]
    print(f"Activate Now preview page: {result['preview_s'] * 1000:,.0f} ms")
    print(f"Activate Now confirm request: {result['confirm_s'] * 1000:,.0f} ms "
          f"({result['targeted']:,} patients planned into {result['chunks']} chunks)")
    print(f"all invitations created and handed to the email backend: {result['total_s']:.1f} s "
          f"({result['sent']:,} sent, {result['made']:,} invitations for {result['patients']:,} patients), "
          f"{rate:,.0f} invitations/s with {args.concurrency} worker processes")
    print(f"speed-up over the faster naive loop: {rate / naive_rate:.1f}x")
    assert result["made"] == result["patients"] == result["sent"] == result["targeted"] == args.patients
    reset(practice)


if __name__ == "__main__":
    main()
