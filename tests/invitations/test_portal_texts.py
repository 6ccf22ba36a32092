"""Texts on the practice's portal pages: Activate Now's preview per channel and per reason, the
invitation channels (texts on or off, how Activate Now sends) on the portal access page, texts on
a run's progress page, and the dashboard's adoption split by channel; roles and tenant scoping."""

import datetime
import json
import re

import pytest
from django.urls import reverse

from invitations import adoption
from invitations.bulk import chunks
from invitations.models import Channel, Status, TextStatus
from invitations.models.bulk_runs import BulkRun
from invitations.models.figures import PracticeFigures
from patients.audit import AuditAction, AuditEntry
from patients.models import BulkChannels
from tests.clock import NOW
from tests.factories import PatientFactory, UserFactory
from tests.invitations.factories import InvitationFactory
from tests.invitations.patient_admin import activate_url, dashboard_url

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("frozen")]
DAY = datetime.timedelta(days=1)
_numbers = iter(range(100, 10_000))


def next_texting_mobile() -> str:
    return f"+1617555{next(_numbers):04d}"


def flat(response) -> str:
    return " ".join(response.content.decode().split())


def turn_on_texts(practice, channels=BulkChannels.EMAIL_THEN_TEXT):
    practice.text_invitations_enabled = True
    practice.bulk_channels = channels
    practice.save()
    return practice


@pytest.fixture
def mixed(practice_a):
    """2 patients with a usable email (one also textable), 1 reachable only by text, 1 by neither."""
    PatientFactory(practice=practice_a)
    PatientFactory(practice=practice_a, mobile_phone=next_texting_mobile(), texting=True)
    PatientFactory(practice=practice_a, email="", mobile_phone=next_texting_mobile(), texting=True)
    PatientFactory(practice=practice_a, email="")
    return practice_a


# -- Activate Now: the preview per channel and per reason ----------------------------------------


def test_email_then_text_previews_emails_texts_and_the_text_reasons(manager_client, mixed):
    turn_on_texts(mixed)
    response = manager_client.get(activate_url(mixed))
    preview = response.context["preview"]
    assert (preview.eligible, preview.emails, preview.texts) == (3, 2, 1)
    page = flat(response)
    assert "3 patients will be invited</strong>; 1 skipped:" in page
    assert "Sends by: <strong>Email; a text to patients without a usable email</strong>." in page
    assert "<tr><td>Emails</td><td style=\"text-align:right\">2</td></tr> <tr><td>Texts</td><td style=\"text-align:right\">1</td></tr>" in page
    assert "<strong>Confirming sends 2 emails and 1 text.</strong>" in page
    # The patient no channel reaches is skipped for the email's reason and the text's.
    assert "<td>Email address is missing.</td><td>The email</td><td style=\"text-align:right\">1</td>" in page
    assert "<td>Mobile phone number is missing.</td><td>The text</td><td style=\"text-align:right\">1</td>" in page
    assert "<td>The patient has not consented to text messages.</td><td>The text</td>" in page
    assert BulkRun.objects.count() == 0


def test_email_and_text_each_where_it_can_be_used_counts_a_patient_under_both(manager_client, mixed):
    turn_on_texts(mixed, BulkChannels.BOTH)
    preview = manager_client.get(activate_url(mixed)).context["preview"]
    assert (preview.eligible, preview.emails, preview.texts) == (3, 2, 2)
    assert "Confirming sends 2 emails and 2 texts." in flat(manager_client.get(activate_url(mixed)))


def test_an_email_only_practice_sends_no_texts_and_shows_no_text_reasons(manager_client, mixed):
    response = manager_client.get(activate_url(mixed))
    page = flat(response)
    assert "Sends by: <strong>Email only</strong>." in page
    assert "Confirming sends 2 emails and 0 texts." in page
    assert "Mobile phone number is missing." not in page
    assert 'value="Yes, invite 2 patients"' in page


def test_a_text_choice_while_texts_are_off_says_the_run_sends_emails_only(manager_client, mixed):
    mixed.bulk_channels = BulkChannels.BOTH
    mixed.save()
    page = flat(manager_client.get(activate_url(mixed)))
    assert "invitation texts are turned off for this practice, so this run sends emails only." in page
    assert "Confirming sends 2 emails and 0 texts." in page


def test_above_the_live_threshold_the_stored_figures_give_the_channels(manager_client, mixed, settings):
    turn_on_texts(mixed)
    settings.PORTAL_LIVE_PREVIEW_MAX_INACTIVE = 0
    manager_client.get(activate_url(mixed))  # counts and stores the figures
    stored = PracticeFigures.objects.get(practice=mixed).data["preview"]
    assert (stored["emails"], stored["texts"]) == (2, 1)
    page = flat(manager_client.get(activate_url(mixed)))
    assert "Counted at" in page and "Confirming sends about 2 emails and 1 text." in page


# -- the invitation channels on the portal access page -------------------------------------------


def channels(**fields) -> dict:
    return {"form": "channels", **fields}


def test_a_manager_turns_texts_on_and_chooses_how_activate_now_sends_audited(
    manager_client, practice_a, eager_celery, django_capture_on_commit_callbacks
):
    PatientFactory(practice=practice_a, email="", mobile_phone=next_texting_mobile(), texting=True)
    assert manager_client.get(dashboard_url(practice_a)).context["figures"].preview.texts == 0
    with django_capture_on_commit_callbacks(execute=True):
        response = manager_client.post(
            dashboard_url(practice_a), channels(text_invitations_enabled="on", bulk_channels="email_then_text")
        )
    assert response.status_code == 302
    practice_a.refresh_from_db()
    assert (practice_a.text_invitations_enabled, practice_a.bulk_channels) == (True, "email_then_text")
    entry = AuditEntry.objects.get(action=AuditAction.PRACTICE_SETTINGS)
    assert entry.practice_id == practice_a.pk and entry.actor.username == "manager_a"
    assert entry.details == {"text_invitations_enabled": True, "bulk_channels": "email_then_text"}
    assert entry.summary == "Changed invitation texts enabled, activate now and monthly re-invite send by"
    # The stored figures are recounted with the new channels.
    figures = manager_client.get(dashboard_url(practice_a)).context["figures"]
    assert (figures.preview.eligible, figures.preview.texts) == (1, 1)


def test_the_channels_form_shows_the_choice_and_saving_it_unchanged_records_nothing(manager_client, practice_a):
    turn_on_texts(practice_a, BulkChannels.BOTH)
    page = manager_client.get(dashboard_url(practice_a)).content.decode()
    assert 'id="invitation-channels"' in page and '<input type="hidden" name="form" value="channels">' in page
    assert re.search(r'<input type="radio" name="bulk_channels" value="both"[^>]*checked', page)
    assert 'value="Save invitation channels"' in page
    response = manager_client.post(dashboard_url(practice_a), channels(text_invitations_enabled="on", bulk_channels="both"))
    assert response.status_code == 302 and not AuditEntry.objects.exists()


def test_a_manager_changes_only_the_channels_not_the_admins_switches(manager_client, practice_a):
    page = manager_client.get(dashboard_url(practice_a)).content.decode()
    assert "Only the practice's admins change these settings." in page
    response = manager_client.post(
        dashboard_url(practice_a), channels(bulk_channels="both", link_lifetime_days="30", invitations_enabled="")
    )
    assert response.status_code == 302
    practice_a.refresh_from_db()
    assert (practice_a.bulk_channels, practice_a.link_lifetime_days, practice_a.invitations_enabled) == ("both", 7, True)
    assert manager_client.post(dashboard_url(practice_a), {"link_lifetime_days": "30"}).status_code == 403


def test_a_practice_admin_changes_the_channels_too(client, admin_a, practice_a):
    client.force_login(admin_a)
    response = client.post(dashboard_url(practice_a), channels(text_invitations_enabled="on", bulk_channels="both"))
    assert response.status_code == 302
    practice_a.refresh_from_db()
    assert (practice_a.text_invitations_enabled, practice_a.bulk_channels) == (True, "both")


def test_front_desk_sees_the_channels_but_cannot_change_them(client_a, practice_a):
    page = client_a.get(dashboard_url(practice_a)).content.decode()
    assert "Only the practice's admins and managers choose how invitations are sent." in page
    assert re.search(r'<input type="radio" name="bulk_channels" value="email"[^>]*disabled', page)
    response = client_a.post(dashboard_url(practice_a), channels(text_invitations_enabled="on", bulk_channels="both"))
    assert response.status_code == 403
    practice_a.refresh_from_db()
    assert (practice_a.text_invitations_enabled, practice_a.bulk_channels) == (False, "email")
    assert not AuditEntry.objects.exists()


def test_an_unknown_channel_choice_is_a_field_error(manager_client, practice_a):
    response = manager_client.post(dashboard_url(practice_a), channels(bulk_channels="pigeon"))
    assert response.status_code == 200
    assert "Select a valid choice." in str(response.context["channels_form"].errors["bulk_channels"])
    practice_a.refresh_from_db()
    assert practice_a.bulk_channels == "email" and not AuditEntry.objects.exists()


def test_another_practices_channels_are_404_and_stay_as_they_were(manager_client, practice_a, practice_b):
    response = manager_client.post(dashboard_url(practice_b), channels(text_invitations_enabled="on", bulk_channels="both"))
    assert response.status_code == 404
    practice_b.refresh_from_db()
    assert (practice_b.text_invitations_enabled, practice_b.bulk_channels) == (False, "email")
    # A practice field slipped into one's own form changes one's own practice only.
    manager_client.post(dashboard_url(practice_a), channels(bulk_channels="both", practice=practice_b.pk, id=practice_b.pk))
    practice_a.refresh_from_db()
    practice_b.refresh_from_db()
    assert (practice_a.bulk_channels, practice_b.bulk_channels) == ("both", "email")
    assert list(AuditEntry.objects.values_list("practice_id", flat=True)) == [practice_a.pk]


# -- a run's progress page ----------------------------------------------------------------------


def finished_run_row(practice, **fields) -> BulkRun:
    return BulkRun.objects.create(
        practice=practice, created_at=NOW, planned_at=NOW, status="done", finished_at=NOW, targeted=5, **fields,
    )


@pytest.fixture
def counted_texts(monkeypatch):
    """The chunks' totals count texts: 4 sent, 1 failed (whatever the totals held before)."""
    original = chunks.chunk_totals

    def with_texts(run_id):
        return {**original(run_id), "texts_sent": 4, "texts_failed": 1}

    monkeypatch.setattr(chunks, "chunk_totals", with_texts)


def test_the_progress_page_shows_texts_sent_and_failed(manager_client, practice_a, counted_texts):
    run = finished_run_row(practice_a)
    page = flat(manager_client.get(reverse("admin:invitations_bulkrun_progress", args=[run.pk])))
    assert '<th scope="row">Texts sent</th><td id="f-texts_sent">4</td>' in page
    assert '<th scope="row">Texts failed</th><td id="f-texts_failed">1</td>' in page
    assert '<span id="s-texts_sent">4</span> texts sent, <span id="s-texts_failed">1</span> failed.' in page
    assert "Waiting for the email or text service (tried again by itself)" in page
    data = manager_client.get(reverse("admin:invitations_bulkrun_progress_json", args=[run.pk])).json()
    assert (data["texts_sent"], data["texts_failed"]) == (4, 1)


def test_activate_now_by_email_then_text_counts_its_texts_on_the_progress_page(
    manager_client, mixed, eager_celery, django_capture_on_commit_callbacks
):
    turn_on_texts(mixed)
    with django_capture_on_commit_callbacks(execute=True):
        response = manager_client.post(activate_url(mixed))
    run = BulkRun.objects.get()
    assert response["Location"] == reverse("admin:invitations_bulkrun_progress", args=[run.pk])
    data = manager_client.get(reverse("admin:invitations_bulkrun_progress_json", args=[run.pk])).json()
    assert (data["finished"], data["sent"], data["texts_sent"], data["texts_failed"]) == (True, 3, 1, 0)
    page = flat(manager_client.get(response["Location"]))
    assert '<th scope="row">Texts sent</th><td id="f-texts_sent">1</td>' in page
    listing = manager_client.get(reverse("admin:invitations_bulkrun_changelist")).content.decode()
    assert "3 targeted, 3 sent, 0 failed, 1 skipped; 1 text sent, 0 failed" in listing


def test_an_email_run_shows_no_text_figures(manager_client, practice_a):
    run = finished_run_row(practice_a)
    page = manager_client.get(reverse("admin:invitations_bulkrun_progress", args=[run.pk])).content.decode()
    assert "Texts sent" not in page and "Waiting for the email service (tried again by itself)" in page
    data = manager_client.get(reverse("admin:invitations_bulkrun_progress_json", args=[run.pk])).json()
    assert "texts_sent" not in data and "texts_failed" not in data


def test_another_practices_run_progress_is_404_with_texts_too(manager_client, practice_b, counted_texts):
    run = finished_run_row(practice_b)
    assert manager_client.get(reverse("admin:invitations_bulkrun_progress", args=[run.pk])).status_code == 404
    assert manager_client.get(reverse("admin:invitations_bulkrun_progress_json", args=[run.pk])).status_code == 404


# -- the dashboard: adoption by channel -----------------------------------------------------------


def by_email(practice, at, **fields):
    return InvitationFactory(patient=PatientFactory(practice=practice), created_at=at, **fields)


def by_text(practice, at, **fields):
    number = next_texting_mobile()
    patient = PatientFactory(practice=practice, email="", mobile_phone=number, texting=True)
    text = {
        "email": "", "by_email": False, "by_text": True, "text_to": number, "sent_at": None, "text_sent_at": at,
        "text_status": TextStatus.DELIVERED,
    }
    return InvitationFactory(patient=patient, created_at=at, **{**text, **fields})


def accepted(invitation, at, via):
    invitation.status, invitation.accepted_at, invitation.accepted_via = Status.ACCEPTED, at, via
    invitation.patient.portal_user = UserFactory()
    invitation.patient.save()
    invitation.save()


@pytest.fixture
def channels_practice(practice_a, practice_b):
    """This month at practice A: 2 invitations by email, 2 by text, 1 by both (its text two hours
    after its email); registrations: 1 with an email link, 2 with a text link (one of them the
    invitation by both). A text of last year and one of practice B are not counted."""
    turn_on_texts(practice_a)
    by_email(practice_a, NOW - DAY)
    accepted(by_email(practice_a, NOW - DAY), NOW - DAY, "")  # before texts: no channel recorded
    accepted(by_text(practice_a, NOW - DAY), NOW - DAY, Channel.TEXT)
    by_text(practice_a, NOW - DAY, text_status=TextStatus.UNDELIVERED)
    both = by_email(
        practice_a, NOW - DAY, by_text=True, text_to=next_texting_mobile(), text_sent_at=NOW - DAY + datetime.timedelta(hours=2),
        text_status=TextStatus.DELIVERED,
    )
    accepted(both, NOW, Channel.TEXT)
    by_text(practice_a, NOW - 400 * DAY)  # outside the 12 months
    accepted(by_text(practice_b, NOW - DAY), NOW - DAY, Channel.TEXT)  # another practice
    return practice_a


def test_the_figures_split_sent_and_registered_by_channel(channels_practice):
    figures = adoption.figures(channels_practice, now=NOW)
    march = figures.months[-1]
    assert (march.sent, march.emails, march.texts) == (5, 3, 3)  # the invitation by both is sent once, counted in each channel
    assert (march.accepted, march.accepted_by_email, march.accepted_by_text) == (3, 1, 2)
    assert sum(m.texts for m in figures.months) == 3
    rows = {row.channel: (row.label, row.sent, row.registered) for row in figures.by_channel}
    assert rows == {"email": ("Email", 3, 1), "text": ("Text message", 3, 2)}
    assert figures.registered_by_text_share == pytest.approx(2 / 3)


def test_an_invitation_by_both_counts_as_sent_in_the_month_of_its_first_message(practice_a):
    practice_a.time_zone = "UTC"
    practice_a.save()
    first_of_march = datetime.datetime(2026, 3, 1, tzinfo=datetime.timezone.utc)
    by_email(practice_a, first_of_march - DAY, by_text=True, text_to=next_texting_mobile(), text_sent_at=first_of_march + DAY, text_status="sent")
    by_text(practice_a, first_of_march + DAY, sent_at=first_of_march - 2 * DAY, by_email=True, email="x@example.com")
    months = adoption.monthly_funnel(practice_a, now=NOW)
    february, march = months[-2], months[-1]
    assert (february.sent, february.emails, february.texts) == (2, 2, 0)
    assert (march.sent, march.emails, march.texts) == (0, 0, 2)


def test_the_dashboard_shows_what_texts_add(client_a, channels_practice):
    page = flat(client_a.get(dashboard_url(channels_practice)))
    assert "<h2>By channel, the last 12 months</h2>" in page
    assert '<tr><td>Email</td><td class="num">3</td><td class="num">1</td> <td class="num">33%</td></tr>' in page
    assert '<tr><td>Text message</td><td class="num">3</td><td class="num">2</td> <td class="num">67%</td></tr>' in page
    assert "Texts brought <strong>2</strong> of the 3 registrations in the last 12 months (67%)" in page
    assert ('<tr><td>Mar 2026</td><td class="num">3</td><td class="num">3</td> <td class="num">1</td><td class="num">2</td></tr>') in page


def test_a_practice_without_texts_is_told_they_are_off(client_a, practice_a):
    by_email(practice_a, NOW - DAY)
    page = flat(client_a.get(dashboard_url(practice_a)))
    assert "Invitation texts are turned off for this practice; turn them on under" in page
    assert '<tr><td>Text message</td><td class="num">0</td><td class="num">0</td> <td class="num">–</td></tr>' in page


def test_the_dashboard_reads_its_channel_figures_from_the_snapshot_in_a_bounded_number_of_queries(
    client_a, channels_practice, django_assert_max_num_queries
):
    client_a.get(dashboard_url(channels_practice))  # counts and stores the figures; warms the session
    with django_assert_max_num_queries(16):
        assert client_a.get(dashboard_url(channels_practice)).status_code == 200
    for _ in range(15):
        by_text(channels_practice, NOW - DAY)
    adoption.refresh(channels_practice, now=NOW)
    with django_assert_max_num_queries(16):
        response = client_a.get(dashboard_url(channels_practice))
    assert {row.channel: row.sent for row in response.context["by_channel"]}["text"] == 18


def test_counting_the_channels_costs_the_same_queries_however_many_invitations(channels_practice, django_assert_num_queries):
    # Totals and split; the preview (the patients, the children, their parents' accesses); sent and registered by month.
    with django_assert_num_queries(6):
        adoption.figures(channels_practice, now=NOW)
    for _ in range(10):
        by_text(channels_practice, NOW - 40 * DAY)
        by_email(channels_practice, NOW - 40 * DAY, by_text=True, text_to=next_texting_mobile(), text_sent_at=NOW - 39 * DAY, text_status="sent")
    with django_assert_num_queries(6):
        adoption.figures(channels_practice, now=NOW)


def test_channel_figures_round_trip_and_an_older_snapshot_reads_as_email(channels_practice):
    figures = adoption.figures(channels_practice, now=NOW)
    assert adoption.Figures.from_json(json.loads(json.dumps(figures.to_json()))) == figures
    old = figures.to_json()
    for month in old["months"]:
        for key in ("emails", "texts", "accepted_by_text"):
            month.pop(key)
    del old["preview"]["emails"], old["preview"]["texts"]
    loaded = adoption.Figures.from_json(old)
    assert [(m.emails, m.texts, m.accepted_by_email) for m in loaded.months][-1] == (5, 0, 3)
    assert (loaded.preview.emails, loaded.preview.texts) == (None, 0)


def test_another_practices_dashboard_is_404_and_its_texts_are_not_counted(client_a, channels_practice, practice_b):
    assert client_a.get(dashboard_url(practice_b)).status_code == 404
    figures = adoption.figures(channels_practice, now=NOW)
    assert sum(m.accepted_by_text for m in figures.months) == 2  # practice B's registration by text is B's
