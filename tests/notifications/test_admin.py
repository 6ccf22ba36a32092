"""Admin: tenant scoping of applications, deliveries, lender settings and the preferences page;
manual status changes; retry; a bounded number of queries on the applications list."""

import datetime

import pytest
from django.core import mail
from django.urls import reverse

from notifications.models import (
    AlertType,
    ApplicationStatus,
    DeliveryMode,
    DeliveryStatus,
    EventSource,
    LenderEvent,
    NotificationDelivery,
    NotificationPreference,
    NotificationSettings,
    PracticeLenderSettings,
)
from patients.models import Membership, Role
from tests.clock import NOW, UTC
from tests.factories import PatientFactory, PracticeFactory, staff_member

from .factories import ApplicationFactory, LenderSettingsFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("ticking")]


@pytest.fixture
def app_a(office, plan_patient):
    return ApplicationFactory(practice=office, patient=plan_patient, lender_application_id="A-APP")


@pytest.fixture
def app_b(other_office):
    patient = PatientFactory(practice=other_office, first_name="Bravo", last_name="Zulu")
    return ApplicationFactory(practice=other_office, patient=patient, lender_application_id="B-APP")


INLINE = {"events-TOTAL_FORMS": "0", "events-INITIAL_FORMS": "0", "events-MIN_NUM_FORMS": "0", "events-MAX_NUM_FORMS": "0"}


def change_form(status, day="2026-03-02", time="09:30:00"):
    """What the change page posts: the status fields and the read-only timeline's management form."""
    return {"record_status": status, "record_occurred_at_0": day, "record_occurred_at_1": time, **INLINE}


@pytest.fixture
def alice_client(client, alice):
    client.force_login(alice)
    return client


# -- applications -------------------------------------------------------------------------------


def test_the_changelist_shows_only_own_practice(alice_client, app_a, app_b):
    response = alice_client.get(reverse("admin:notifications_paymentplanapplication_changelist"))
    assert response.status_code == 200
    content = response.content.decode()
    assert "A-APP" in content and "Okonkwo" in content
    assert "B-APP" not in content and "Zulu" not in content


def test_the_changelist_filters_by_status(alice_client, office, app_a):
    ApplicationFactory(practice=office, lender_application_id="A-DECLINED", status=ApplicationStatus.DECLINED)
    url = reverse("admin:notifications_paymentplanapplication_changelist")
    content = alice_client.get(url, {"status__exact": "declined"}).content.decode()
    assert "A-DECLINED" in content and "A-APP" not in content


@pytest.mark.parametrize("view", ["change", "history", "delete"])
def test_another_practices_application_is_404(alice_client, app_b, view):
    response = alice_client.get(reverse(f"admin:notifications_paymentplanapplication_{view}", args=[app_b.pk]))
    assert response.status_code == 404


def test_a_manager_cannot_post_a_status_change_to_another_practice(client, bob, app_b):
    client.force_login(bob)
    response = client.post(
        reverse("admin:notifications_paymentplanapplication_change", args=[app_b.pk]),
        change_form("activated", time="09:00"),
    )
    assert response.status_code == 404
    app_b.refresh_from_db()
    assert app_b.status == ApplicationStatus.STARTED


def test_the_changelist_query_count_is_bounded(alice_client, office, django_assert_max_num_queries):
    for i in range(40):
        ApplicationFactory(practice=office, lender_application_id=f"BULK-{i}")
    url = reverse("admin:notifications_paymentplanapplication_changelist")
    alice_client.get(url)  # warm up session / content types
    with django_assert_max_num_queries(12):
        response = alice_client.get(url)
    assert response.content.decode().count("BULK-") >= 40


def test_front_desk_records_a_status_change_with_the_same_alerts(alice_client, alice, bob, app_a, django_capture_on_commit_callbacks):
    url = reverse("admin:notifications_paymentplanapplication_change", args=[app_a.pk])
    with django_capture_on_commit_callbacks(execute=True):
        response = alice_client.post(
            url, change_form("activated")
        )
    assert response.status_code == 302, response.context["adminform"].form.errors
    app_a.refresh_from_db()
    assert app_a.status == ApplicationStatus.ACTIVATED
    # The front desk typed 9:30 office time (Maple Dental is in New York): 14:30 UTC.
    assert app_a.activated_at == datetime.datetime(2026, 3, 2, 14, 30, tzinfo=UTC)
    event = LenderEvent.objects.get()
    assert (event.source, event.actor, event.event_type) == (EventSource.STAFF, alice, "activated")
    assert sorted(m.to[0] for m in mail.outbox) == sorted([alice.email, bob.email])
    assert all(m.subject.startswith("Payment plan activated:") for m in mail.outbox)


def test_a_backwards_change_is_refused_with_a_reason(alice_client, app_a):
    app_a.record_step("approved", NOW)
    app_a.save()
    url = reverse("admin:notifications_paymentplanapplication_change", args=[app_a.pk])
    response = alice_client.post(
        url, change_form("pre_qualified")
    )
    assert response.status_code == 200
    form = response.context["adminform"].form
    assert "already approved" in form.errors["record_status"][0]
    assert [value for value, _ in form.fields["record_status"].choices] == ["", "activated"]
    app_a.refresh_from_db()
    assert app_a.status == ApplicationStatus.APPROVED
    assert not LenderEvent.objects.exists()


def test_saving_without_a_status_change_changes_nothing(alice_client, app_a):
    url = reverse("admin:notifications_paymentplanapplication_change", args=[app_a.pk])
    response = alice_client.post(url, change_form("", day="", time=""))
    assert response.status_code == 302
    assert not LenderEvent.objects.exists()


def test_a_viewer_sees_but_cannot_record(client, office, app_a):
    viewer = staff_member(office, Role.VIEWER, username="viewer", email="v@maple.example")
    client.force_login(viewer)
    url = reverse("admin:notifications_paymentplanapplication_change", args=[app_a.pk])
    response = client.get(url)
    assert response.status_code == 200
    assert "record_status" not in response.content.decode()
    response = client.post(url, change_form("activated"))
    assert response.status_code == 403
    app_a.refresh_from_db()
    assert app_a.status == ApplicationStatus.STARTED


# -- deliveries ---------------------------------------------------------------------------------


@pytest.fixture
def failed_alert_a(app_a, alice):
    return NotificationDelivery.objects.create(
        practice=app_a.practice, application=app_a, alert_type=AlertType.DECLINED, recipient=alice,
        status=DeliveryStatus.FAILED, attempts=3, last_error="AnymailAPIError: 503",
    )


@pytest.fixture
def failed_b(app_b, other_office):
    member = staff_member(other_office, Role.ADMIN, username="carol", email="carol@birch.example")
    return NotificationDelivery.objects.create(
        practice=other_office, application=app_b, alert_type=AlertType.DECLINED, recipient=member,
        status=DeliveryStatus.FAILED, attempts=3, last_error="AnymailAPIError: 503",
    )


def test_failed_sends_are_visible_and_scoped(alice_client, failed_alert_a, failed_b):
    url = reverse("admin:notifications_notificationdelivery_changelist")
    content = alice_client.get(url, {"status__exact": "failed"}).content.decode()
    assert "AnymailAPIError: 503" in content
    assert "A-APP" in content and "B-APP" not in content
    assert alice_client.get(reverse("admin:notifications_notificationdelivery_change", args=[failed_b.pk])).status_code == 404


def test_a_manager_retries_failed_sends(client, bob, failed_alert_a, failed_b, django_capture_on_commit_callbacks):
    client.force_login(bob)
    url = reverse("admin:notifications_notificationdelivery_changelist")
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            url, {"action": "retry_failed", "_selected_action": [failed_alert_a.pk, failed_b.pk]}, follow=True
        )
    assert "Sending 1 alert again." in response.content.decode()
    failed_alert_a.refresh_from_db()
    failed_b.refresh_from_db()
    assert failed_alert_a.status == DeliveryStatus.SENT
    assert failed_b.status == DeliveryStatus.FAILED  # another practice's row is untouched
    assert [m.to for m in mail.outbox] == [["alice@maple.example"]]


def test_the_application_page_links_to_its_alerts(alice_client, app_a, failed_alert_a, office, alice):
    other = ApplicationFactory(practice=office, lender_application_id="A-OTHER")
    NotificationDelivery.objects.create(practice=office, application=other, alert_type=AlertType.ACTIVATED, recipient=alice)
    page = alice_client.get(reverse("admin:notifications_paymentplanapplication_change", args=[app_a.pk]))
    link = reverse("admin:notifications_notificationdelivery_changelist") + f"?application__id__exact={app_a.pk}"
    assert link in page.content.decode()
    listing = alice_client.get(link)
    assert listing.status_code == 200
    assert [d.pk for d in listing.context["cl"].result_list] == [failed_alert_a.pk]


def test_front_desk_cannot_retry(alice_client, failed_alert_a):
    response = alice_client.get(reverse("admin:notifications_notificationdelivery_changelist"))
    assert "retry_failed" not in response.content.decode()


# -- lender webhook settings ---------------------------------------------------------------------


def test_a_practice_admin_sees_and_rotates_the_secret(client, office):
    admin_user = staff_member(office, Role.ADMIN, username="padmin", email="padmin@maple.example")
    settings_row = LenderSettingsFactory(practice=office)
    old = settings_row.webhook_secret
    client.force_login(admin_user)
    url = reverse("admin:notifications_practicelendersettings_change", args=[settings_row.pk])
    assert old in client.get(url).content.decode()
    response = client.post(url, {"practice": office.pk, "rotate_secret": "on"})
    assert response.status_code == 302
    settings_row.refresh_from_db()
    assert settings_row.webhook_secret != old
    assert settings_row.previous_webhook_secret == old


def test_the_webhook_page_gives_the_lender_the_whole_address(client, office, settings):
    settings.PORTAL_BASE_URL = "https://portal.maple-dental.example"
    admin_user = staff_member(office, Role.ADMIN, username="padmin", email="padmin@maple.example")
    row = LenderSettingsFactory(practice=office)
    client.force_login(admin_user)
    content = client.get(reverse("admin:notifications_practicelendersettings_change", args=[row.pk])).content.decode()
    assert f"the address https://portal.maple-dental.example{reverse('notifications:payment_plan_events')}." in content


def test_save_and_switch_saves_the_changes_then_shows_the_other_practice(client, alice, office, other_office):
    """The member changed Maple's alerts, then picked another practice: "Save them and show ..."
    saves Maple's and opens the other one's."""
    third = PracticeFactory(name="Cedar Ortho")
    Membership.objects.create(user=alice, practice=third, role=Role.VIEWER)
    client.force_login(alice)
    data = {"practice": office.pk, "then_practice": third.pk, "type_declined": "on", "delivery_mode": "immediate"}
    response = client.post(reverse(PREFS) + f"?practice={office.pk}", data)
    assert response["Location"].endswith(f"?practice={third.pk}")
    assert NotificationPreference.objects.filter(user=alice, practice=office, enabled=False).count() == 4
    # Another practice's id as the next page is ignored: the saved practice is shown again.
    data["then_practice"] = other_office.pk
    assert client.post(reverse(PREFS) + f"?practice={office.pk}", data)["Location"].endswith(f"?practice={office.pk}")


def test_a_practice_admin_sets_up_the_webhook(client, office):
    admin_user = staff_member(office, Role.ADMIN, username="padmin", email="padmin@maple.example")
    client.force_login(admin_user)
    response = client.post(reverse("admin:notifications_practicelendersettings_add"), {"practice": office.pk})
    assert response.status_code == 302
    assert len(office.lender_settings.webhook_secret) == 64


def test_managers_and_other_practices_never_see_a_secret(client, bob, office, other_office):
    mine = LenderSettingsFactory(practice=office)
    theirs = LenderSettingsFactory(practice=other_office, webhook_secret="theirs-000000000000000000000000")
    client.force_login(bob)  # a manager at Maple: notifications.* but not a practice admin
    assert client.get(reverse("admin:notifications_practicelendersettings_change", args=[mine.pk])).status_code in (403, 404)
    admin_user = staff_member(office, Role.ADMIN, username="padmin", email="padmin@maple.example")
    client.force_login(admin_user)
    assert client.get(reverse("admin:notifications_practicelendersettings_change", args=[theirs.pk])).status_code == 404
    listing = client.get(reverse("admin:notifications_practicelendersettings_changelist")).content.decode()
    assert "Birch Smiles" not in listing


@pytest.fixture
def practice_admin(office):
    return staff_member(office, Role.ADMIN, username="padmin", email="padmin@maple.example")


LENDER_ADD = "admin:notifications_practicelendersettings_add"
LENDER_LIST = "admin:notifications_practicelendersettings_changelist"


def test_a_single_practice_admin_sees_their_practice_named_and_what_saving_does(client, practice_admin):
    client.force_login(practice_admin)
    response = client.get(reverse(LENDER_ADD))
    assert response.status_code == 200
    field = response.context["adminform"].form.fields["practice"]
    assert field.disabled and field.initial == practice_admin.memberships.get().practice_id
    content = response.content.decode()
    assert '<strong id="id_practice">Maple Dental</strong>' in content
    assert '<select name="practice"' not in content and 'type="hidden" name="practice"' not in content
    assert "A secret is generated when you save" in field.help_text
    assert "X-Lender-Signature" in field.help_text and "/api/payment-plans/events/" in field.help_text


def test_a_multi_practice_admin_chooses_among_their_practices_without_a_secret(client, practice_admin, office, other_office):
    Membership.objects.create(user=practice_admin, practice=other_office, role=Role.ADMIN)
    already = PracticeFactory(name="Aspen Dental")
    Membership.objects.create(user=practice_admin, practice=already, role=Role.ADMIN)
    LenderSettingsFactory(practice=already)
    managed = PracticeFactory(name="Cedar Dental")  # a manager there: no lender settings for them
    Membership.objects.create(user=practice_admin, practice=managed, role=Role.MANAGER)
    PracticeFactory(name="Elm Dental")  # not theirs at all
    client.force_login(practice_admin)
    field = client.get(reverse(LENDER_ADD)).context["adminform"].form.fields["practice"]
    assert not field.disabled
    assert [str(p) for p in field.queryset] == ["Birch Smiles", "Maple Dental"]
    assert "generated when you save" in field.help_text

    response = client.post(reverse(LENDER_ADD), {"practice": managed.pk})
    assert response.status_code == 200
    assert "Choose one of your practices that has no webhook secret yet" in response.content.decode()
    assert not PracticeLenderSettings.objects.filter(practice=managed).exists()


def test_a_single_practice_admin_cannot_set_up_another_practice(client, practice_admin, office, other_office):
    client.force_login(practice_admin)
    client.post(reverse(LENDER_ADD), {"practice": other_office.pk})
    assert not PracticeLenderSettings.objects.filter(practice=other_office).exists()
    assert PracticeLenderSettings.objects.filter(practice=office).exists()  # the named practice, whatever was posted


def test_saving_opens_the_page_with_the_new_secret(client, practice_admin, office):
    client.force_login(practice_admin)
    response = client.post(reverse(LENDER_ADD), {"practice": office.pk}, follow=True)
    row = PracticeLenderSettings.objects.get(practice=office)
    assert response.redirect_chain[-1][0] == reverse("admin:notifications_practicelendersettings_change", args=[row.pk])
    assert row.webhook_secret in response.content.decode()


def test_nothing_to_add_once_every_practice_has_a_secret(client, practice_admin, office):
    LenderSettingsFactory(practice=office)
    client.force_login(practice_admin)
    assert client.get(reverse(LENDER_ADD)).status_code == 403
    assert reverse(LENDER_ADD) not in client.get(reverse(LENDER_LIST)).content.decode()


@pytest.mark.parametrize(
    "rotated_ago, shown",
    [
        (None, "None (never rotated)"),
        (datetime.timedelta(hours=24) - datetime.timedelta(seconds=1), "Still accepted until"),
        (datetime.timedelta(hours=24) + datetime.timedelta(seconds=1), "No longer accepted"),
    ],
)
def test_the_list_shows_the_practice_and_the_secrets_dates(client, practice_admin, office, rotated_ago, shown):
    row = LenderSettingsFactory(practice=office)
    if rotated_ago is not None:
        row.rotate_secret(now=NOW - rotated_ago)
    client.force_login(practice_admin)
    content = client.get(reverse(LENDER_LIST)).content.decode()
    assert "column-practice" in content and ">Maple Dental</a>" in content  # even for a single-practice admin
    assert "column-set_up" in content and "column-last_rotated" in content
    assert shown in content
    assert ("Never" in content) == (rotated_ago is None)
    assert row.webhook_secret not in content


@pytest.mark.parametrize("view", ["change", "history", "delete"])
def test_another_practices_lender_settings_are_404(client, practice_admin, other_office, view):
    theirs = LenderSettingsFactory(practice=other_office)
    client.force_login(practice_admin)
    url = reverse(f"admin:notifications_practicelendersettings_{view}", args=[theirs.pk])
    assert client.get(url).status_code == 404


def test_managers_cannot_add_lender_settings(client, bob):
    client.force_login(bob)
    assert client.get(reverse(LENDER_ADD)).status_code == 403
    assert client.get(reverse(LENDER_LIST)).status_code == 403


# -- my notification preferences ------------------------------------------------------------------

PREFS = "admin:notifications_my_preferences"


def test_a_new_member_sees_every_type_on_and_immediate(alice_client, office):
    response = alice_client.get(reverse(PREFS))
    assert response.status_code == 200
    form = response.context["form"]
    assert all(form.initial[f"type_{t.value}"] for t in AlertType)
    assert form.initial["delivery_mode"] == DeliveryMode.IMMEDIATE
    content = response.content.decode()
    assert "Maple Dental" in content and 'id="id_practice"' not in content  # one practice: no dropdown
    assert "Practice: <strong>Maple Dental</strong>" in content and "office" not in content.lower()


def test_saving_preferences(alice_client, alice, office):
    data = {"practice": office.pk, "type_declined": "on", "type_activated": "on", "delivery_mode": "digest"}
    response = alice_client.post(reverse(PREFS) + f"?practice={office.pk}", data)
    assert response.status_code == 302
    assert response["Location"].endswith(f"?practice={office.pk}")
    enabled = dict(NotificationPreference.objects.filter(user=alice, practice=office).values_list("alert_type", "enabled"))
    assert enabled == {
        "declined": True, "activated": True, "incomplete": False, "open_approval": False, "pre_qualified": False
    }
    assert NotificationSettings.objects.get(user=alice, practice=office).delivery_mode == DeliveryMode.DIGEST
    # The page shows what was saved.
    form = alice_client.get(response["Location"]).context["form"]
    assert form.initial["type_declined"] and not form.initial["type_incomplete"]
    assert form.initial["delivery_mode"] == "digest"


def test_a_multi_office_member_picks_the_office(client, alice, office, other_office):
    third = PracticeFactory(name="Cedar Ortho")
    Membership.objects.create(user=alice, practice=third, role=Role.VIEWER)
    client.force_login(alice)
    response = client.get(reverse(PREFS))
    content = response.content.decode()
    assert 'id="id_practice"' in content and "<label for=\"id_practice\">Practice:</label>" in content
    assert "Maple Dental" in content and "Cedar Ortho" in content
    assert "Birch Smiles" not in content

    client.post(reverse(PREFS), {"practice": third.pk, "delivery_mode": "immediate"})  # every type off at Cedar
    assert not NotificationPreference.objects.filter(user=alice, practice=third, enabled=True).exists()
    assert not NotificationPreference.objects.filter(user=alice, practice=office).exists()  # Maple untouched
    assert client.get(reverse(PREFS), {"practice": third.pk}).context["practice"] == third


def test_another_practices_id_is_404(alice_client, alice, other_office):
    assert alice_client.get(reverse(PREFS), {"practice": other_office.pk}).status_code == 404
    assert alice_client.get(reverse(PREFS), {"practice": "abc"}).status_code == 404
    response = alice_client.post(reverse(PREFS), {"practice": other_office.pk, "delivery_mode": "digest"})
    assert response.status_code == 404
    assert not NotificationSettings.objects.exists()


def test_the_admin_index_links_to_the_preferences_page(client, office):
    viewer = staff_member(office, Role.VIEWER, username="viewer", email="v@maple.example")
    client.force_login(viewer)
    content = client.get(reverse("admin:index")).content.decode()
    changelist = reverse("admin:notifications_notificationpreference_changelist")
    assert changelist in content and "My notification preferences" in content
    response = client.get(changelist)
    assert response.status_code == 302 and response["Location"] == reverse(PREFS)


def test_a_superuser_without_memberships_is_told_so(admin_client):
    response = admin_client.get(reverse(PREFS))
    assert response.status_code == 200
    assert "not a member of any practice" in response.content.decode()


def test_the_deliveries_changelist_query_count_is_bounded(client, bob, office, django_assert_max_num_queries):
    for i in range(30):
        application = ApplicationFactory(practice=office, lender_application_id=f"Q-{i}")
        NotificationDelivery.objects.create(
            practice=office, application=application, alert_type=AlertType.DECLINED, recipient=bob
        )
    client.force_login(bob)
    url = reverse("admin:notifications_notificationdelivery_changelist")
    client.get(url)
    with django_assert_max_num_queries(12):
        response = client.get(url)
    assert response.content.decode().count("Application Q-") == 30


def test_a_change_overtaken_by_a_lender_event_is_reported_not_claimed(alice_client, app_a):
    from unittest import mock

    from notifications import services

    url = reverse("admin:notifications_paymentplanapplication_change", args=[app_a.pk])
    rejection = services.EventRejected("status_backwards", "The application is already activated; it cannot be set to approved.")
    with mock.patch("notifications.services.record_status_change", side_effect=rejection):
        response = alice_client.post(url, change_form("approved"), follow=True)
    texts = [str(m) for m in response.context["messages"]]
    assert texts == ["The application is already activated; it cannot be set to approved."]
    assert response.redirect_chain == [(url, 302)]
    from django.contrib.admin.models import LogEntry

    assert not LogEntry.objects.exists()
