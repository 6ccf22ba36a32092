"""Activate Now in the admin: preview, confirm, progress page and JSON, the runs list, roles,
and tenant scoping (another practice's ids are 404)."""

import datetime

import pytest
from django.core import mail
from django.urls import reverse

from invitations.bulk import runs
from invitations.models import Invitation
from invitations.models.bulk_runs import BulkRun, BulkRunStatus
from patients.audit import AuditAction, AuditEntry
from patients.models import Role
from tests.clock import NOW
from tests.factories import PatientFactory, staff_member
from tests.invitations.patient_admin import activate_url, messages_of

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("frozen")]


def progress_url(run):
    return reverse("admin:invitations_bulkrun_progress", args=[run.pk])


def json_url(run):
    return reverse("admin:invitations_bulkrun_progress_json", args=[run.pk])


def test_the_preview_says_how_many_are_invited_and_why_others_are_skipped(manager_client, practice_a):
    PatientFactory.create_batch(3, practice=practice_a)
    PatientFactory.create_batch(2, practice=practice_a, email="")
    PatientFactory(practice=practice_a, email_consent=False)
    response = manager_client.get(activate_url(practice_a))
    assert response.status_code == 200
    page = " ".join(response.content.decode().split())
    assert "3 patients will be invited</strong>; 3 skipped: 2 no email address, 1 no email consent." in page
    assert "the patient has not consented" not in page.split("</p>")[0]  # never a lower-cased sentence run on
    assert 'value="Yes, invite 3 patients"' in page
    assert BulkRun.objects.count() == 0  # a preview changes nothing


def test_confirming_records_a_run_returns_at_once_and_the_chunks_send_after_commit(
    manager_client, practice_a, eager_celery, django_capture_on_commit_callbacks
):
    patients = PatientFactory.create_batch(3, practice=practice_a)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = manager_client.post(activate_url(practice_a))
    run = BulkRun.objects.get()
    assert response.status_code == 302 and response["Location"] == progress_url(run)
    assert mail.outbox == [] and run.status == BulkRunStatus.RUNNING  # nothing sent in the request
    assert run.started_by.username == "manager_a"
    entry = AuditEntry.objects.get(action=AuditAction.ACTIVATE_NOW)
    assert entry.practice_id == practice_a.pk and entry.details == {"run": run.pk}

    assert run.planned_at is None  # a worker counts and plans, not the request
    waiting = manager_client.get(json_url(run)).json()
    assert (waiting["planned"], waiting["finished"], waiting["percent"]) == (False, False, 0)
    page = manager_client.get(progress_url(run)).content.decode()
    assert '<meta http-equiv="refresh" content="5">' in page  # works without JavaScript
    assert "<progress" in page and "data-progress-url" in page and "Queued: the run is recorded" in page

    with django_capture_on_commit_callbacks(execute=True):
        for callback in callbacks:
            callback()  # the planning task, which enqueues the chunk tasks after its commit
    assert sorted(m.to[0] for m in mail.outbox) == sorted(p.email for p in patients)
    done = manager_client.get(json_url(run)).json()
    assert done | {"finished_at": None} == {
        "status": "done", "planned": True, "finished": True, "targeted": 3, "processed": 3, "invited": 3, "sent": 3, "failed": 0,
        "emails_sent": 3, "emails_failed": 0, "waiting": 0, "skipped": 0, "skipped_at_plan": 0, "chunks": 1, "chunks_done": 1, "percent": 100,
        "rate": None, "seconds_left": None, "time_left": "", "send_problem": "", "finished_at": None,
    }
    page = manager_client.get(progress_url(run)).content.decode()
    assert "http-equiv" not in page and "Summary" in page


def test_a_second_activate_now_while_one_runs_is_refused_with_a_message(
    manager_client, practice_a, django_capture_on_commit_callbacks
):
    PatientFactory.create_batch(2, practice=practice_a)
    with django_capture_on_commit_callbacks(execute=False):
        manager_client.post(activate_url(practice_a))
        response = manager_client.post(activate_url(practice_a))
    run = BulkRun.objects.get()
    assert response["Location"] == progress_url(run)
    assert "Activate Now is already running for this practice" in messages_of(response)[-1]
    assert "already running" in manager_client.get(activate_url(practice_a)).content.decode()
    assert Invitation.objects.count() == 0


def test_the_confirm_request_does_a_fixed_small_amount_of_work(
    manager_client, practice_a, django_assert_max_num_queries, django_capture_on_commit_callbacks
):
    PatientFactory.create_batch(30, practice=practice_a)
    manager_client.get(activate_url(practice_a))
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        with django_assert_max_num_queries(12):
            assert manager_client.post(activate_url(practice_a)).status_code == 302
    assert len(callbacks) == 1  # one planning task, whatever the practice's size


def test_front_desk_and_viewers_see_the_dashboard_but_cannot_activate(client, practice_a, front_desk_a):
    viewer = staff_member(practice_a, Role.VIEWER, username="viewer_a")
    for user in (front_desk_a, viewer):
        client.force_login(user)
        dashboard = client.get(reverse("admin:invitations_portal_dashboard", args=[practice_a.pk]))
        assert dashboard.status_code == 200
        assert "Activate Now…" not in dashboard.content.decode()
        assert client.get(activate_url(practice_a)).status_code == 403
        assert client.post(activate_url(practice_a)).status_code == 403
    assert BulkRun.objects.count() == 0


def test_another_practices_pages_and_runs_are_404(manager_client, practice_a, practice_b, django_capture_on_commit_callbacks):
    PatientFactory(practice=practice_b)
    with django_capture_on_commit_callbacks(execute=False):
        run_b = runs.start_run(practice=practice_b, now=NOW)
    for url in (
        reverse("admin:invitations_portal_dashboard", args=[practice_b.pk]),
        activate_url(practice_b),
        reverse("admin:invitations_portal_template", args=[practice_b.pk]),
        progress_url(run_b),
        json_url(run_b),
        reverse("admin:invitations_bulkrun_change", args=[run_b.pk]),
    ):
        assert manager_client.get(url).status_code == 404, url
    assert manager_client.post(activate_url(practice_b)).status_code == 404
    listing = manager_client.get(reverse("admin:invitations_bulkrun_changelist")).content.decode()
    assert "Practice B" not in listing


def test_the_runs_list_shows_who_started_each_run_and_its_figures(
    manager_client, practice_a, eager_celery, django_capture_on_commit_callbacks
):
    PatientFactory.create_batch(2, practice=practice_a)
    PatientFactory(practice=practice_a, deceased=True)
    with django_capture_on_commit_callbacks(execute=True):
        manager_client.post(activate_url(practice_a))
    page = manager_client.get(reverse("admin:invitations_bulkrun_changelist")).content.decode()
    assert "manager_a" in page
    assert "2 targeted, 2 sent, 0 failed, 1 skipped" in page
    assert "Portal access dashboard" in page


def test_the_portal_index_takes_a_one_practice_user_straight_to_the_dashboard(manager_client, practice_a):
    response = manager_client.get(reverse("admin:invitations_portal"))
    assert response["Location"] == reverse("admin:invitations_portal_dashboard", args=[practice_a.pk])


def test_the_preview_is_counted_live_up_to_the_threshold(manager_client, practice_a):
    PatientFactory(practice=practice_a)
    manager_client.get(activate_url(practice_a))  # stores the figures
    PatientFactory(practice=practice_a)
    page = " ".join(manager_client.get(activate_url(practice_a)).content.decode().split())
    assert "2 patients will be invited</strong>" in page and 'value="Yes, invite 2 patients"' in page
    assert "Counted at" not in page


def test_above_the_threshold_the_preview_comes_from_the_stored_figures(
    manager_client, practice_a, settings, frozen, eager_celery, django_capture_on_commit_callbacks
):
    settings.PORTAL_LIVE_PREVIEW_MAX_INACTIVE = 0
    PatientFactory(practice=practice_a)
    manager_client.get(activate_url(practice_a))  # the first visit counts and stores the figures
    PatientFactory(practice=practice_a)
    frozen.shift(datetime.timedelta(minutes=3))
    page = " ".join(manager_client.get(activate_url(practice_a)).content.decode().split())
    assert "1 patient will be invited</strong>" in page and 'value="Yes, invite about 1 patient"' in page
    assert (
        "Counted at March 2, 2026, 10:00 AM (3 minutes ago); each patient is checked again when the run starts, "
        "and the progress page shows the exact figures."
    ) in page
    assert 'name="back" value="activate"' in page and 'value="Refresh now"' in page

    with django_capture_on_commit_callbacks(execute=True):
        response = manager_client.post(reverse("admin:invitations_portal_refresh", args=[practice_a.pk]), {"back": "activate"})
    assert response["Location"] == activate_url(practice_a)
    page = " ".join(manager_client.get(activate_url(practice_a)).content.decode().split())
    assert "2 patients will be invited</strong>" in page and "Counted at March 2, 2026, 10:03 AM (0 minutes ago)" in page

    with django_capture_on_commit_callbacks(execute=True):
        response = manager_client.post(activate_url(practice_a))  # confirming is unchanged: the run counts again
    run = BulkRun.objects.get()
    assert response["Location"] == progress_url(run) and (run.targeted, run.sent) == (2, 2)


def test_the_previews_first_line_names_every_reason_in_a_few_words():
    """"41 no email address, 30 opted out of email, 2 replied STOP to texts, 1 no ZIP code": each
    rule has words of its own, with STOP and ZIP as people write them (never a lower-cased message)."""
    from invitations import eligibility
    from invitations.admin.activate_now import SKIP_IN_WORDS, skipped_in_words

    # Every reason a bulk run can name: the patient's own, a parent's or guardian's, a child's with nobody to invite.
    assert set(SKIP_IN_WORDS) == set(eligibility.BULK_RULES_BY_CODE)
    rules = eligibility.RULES_BY_CODE
    words = dict((w, c) for c, w in skipped_in_words([(rules["sms_opted_out"], 2), (rules["missing_zip_code"], 1)]))
    assert words == {"replied STOP to texts": 2, "no ZIP code": 1}
