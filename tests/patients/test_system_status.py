import datetime

import pytest
import time_machine
from django.test import override_settings
from django.urls import reverse

from patients.jobs import JobRun, WorkerHeartbeat, record_heartbeat, tracked_job
from patients.models import Role
from tests.factories import staff_member

pytestmark = pytest.mark.django_db
NOW = datetime.datetime(2026, 11, 22, 12, 0, tzinfo=datetime.timezone.utc)
DEAD_BROKER = "redis://:s3cret-password@127.0.0.1:1/0"


@pytest.fixture
def fresh_worker():
    record_heartbeat("celery@worker-1", now=NOW - datetime.timedelta(seconds=30))


@time_machine.travel(NOW, tick=False)
def test_healthz_is_200_when_everything_is_fine(client, fresh_worker):
    response = client.get("/healthz")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["status"] == "ok"
    assert set(body["checks"]) == {"database", "broker", "worker"}
    assert body["checks"]["worker"]["data"]["last_seen_seconds"] == 30


@time_machine.travel(NOW, tick=False)
def test_healthz_is_503_with_the_broker_down_and_shows_no_secret(client, fresh_worker):
    with override_settings(CELERY_BROKER_URL=DEAD_BROKER, CELERY_BROKER_TRANSPORT_OPTIONS={}):
        response = client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["checks"]["broker"]["ok"] is False
    assert body["checks"]["database"]["ok"] is True
    assert "s3cret" not in response.content.decode()


@time_machine.travel(NOW, tick=False)
def test_healthz_is_503_when_no_worker_reported_recently(client):
    record_heartbeat("celery@old", now=NOW - datetime.timedelta(minutes=3, seconds=1))
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["checks"]["worker"]["ok"] is False


@time_machine.travel(NOW, tick=False)
def test_worker_exactly_at_the_staleness_limit_is_alive(client):
    record_heartbeat("celery@edge", now=NOW - datetime.timedelta(minutes=3))
    assert client.get("/healthz").json()["checks"]["worker"]["ok"] is True


def test_healthz_refuses_post(client):
    assert client.post("/healthz").status_code == 405


def test_heartbeat_task_records_the_worker():
    from patients.tasks import heartbeat

    heartbeat.apply(headers={"hostname": "celery@w2"})
    assert WorkerHeartbeat.objects.count() == 1


def test_tracked_job_records_success_and_failure():
    @tracked_job("tests.ok_job")
    def ok_job():
        return "swept 3"

    @tracked_job("tests.bad_job")
    def bad_job():
        raise RuntimeError("boom")

    ok_job()
    ok_job()
    with pytest.raises(RuntimeError):
        bad_job()
    ok = JobRun.objects.get(name="tests.ok_job")
    assert (ok.runs, ok.last_result, ok.last_summary) == (2, "ok", "swept 3")
    bad = JobRun.objects.get(name="tests.bad_job")
    assert (bad.failures, bad.last_result) == (1, "error") and "RuntimeError" in bad.last_error
    assert "boom" not in bad.last_error  # messages may quote other practices' rows


@override_settings(CELERY_BEAT_SCHEDULE={"sweep": {"task": "tests.sweep", "schedule": 900.0}})
def test_status_page_warns_about_an_overdue_job(admin_client):
    with time_machine.travel(NOW - datetime.timedelta(hours=2), tick=False):
        tracked_job("tests.sweep")(lambda: "ok")()
    with time_machine.travel(NOW, tick=False):
        response = admin_client.get(reverse("admin:patients_jobrun_changelist"))
    assert response.status_code == 200
    content = response.content.decode()
    assert "Overdue" in content and "tests.sweep" in content


@override_settings(CELERY_BEAT_SCHEDULE={"sweep": {"task": "tests.sweep", "schedule": 900.0}})
def test_status_page_is_calm_for_a_job_that_ran_recently(admin_client):
    tracked_job("tests.sweep")(lambda: "ok")()
    assert "Overdue" not in admin_client.get(reverse("admin:patients_jobrun_changelist")).content.decode()


@pytest.mark.parametrize("role,status", [(Role.ADMIN, 200), (Role.MANAGER, 403), (Role.FRONT_DESK, 403), (Role.VIEWER, 403)])
def test_status_page_is_for_superusers_and_practice_admins(client, practice_a, role, status):
    client.force_login(staff_member(practice_a, role))
    assert client.get(reverse("admin:patients_jobrun_changelist")).status_code == status


def test_status_page_shows_when_delivery_reports_last_arrived(admin_client):
    from invitations.models.delivery_reports import store_once

    content = admin_client.get(reverse("admin:patients_jobrun_changelist")).content.decode()
    assert "none received yet" in content
    store_once(provider="Postmark", event_id="e1", event_type="delivered", message_id="m", occurred_at=None)
    content = admin_client.get(reverse("admin:patients_jobrun_changelist")).content.decode()
    assert "last received" in content


def test_practice_logos_are_served_without_debug_and_nothing_else_is(client, practice_a, settings, tmp_path):
    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage

    settings.MEDIA_ROOT = tmp_path
    png = b"\x89PNG\r\n\x1a\n" + b"0" * 20
    name = default_storage.save("practice-logos/maple.png", ContentFile(png))
    default_storage.save("imports/secret.csv", ContentFile(b"chart,dob"))
    response = client.get("/" + settings.MEDIA_URL.strip("/") + "/" + name)
    assert response.status_code == 200 and response["Content-Type"] == "image/png"
    assert b"".join(response.streaming_content) == png
    assert client.get("/media/imports/secret.csv").status_code == 404
    assert client.get("/media/practice-logos/..%2Fimports%2Fsecret.csv").status_code == 404
    assert client.get("/media/practice-logos/missing.png").status_code == 404
