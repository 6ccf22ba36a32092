"""Texts on the ground layer's admin: the practice's text settings, the chart's mobile number (typed
the local way, kept in E.164, shown as staff read it), text consent recorded with who and when, the
undeliverable mark while it applies, and the text opt-out list kept inside each practice."""

import datetime

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from patients.audit import AuditAction, AuditEntry
from patients.models import BulkChannels, Patient, Role, SmsOptOut, SmsOptOutReason
from tests.clock import NOW
from tests.factories import PatientFactory, PracticeFactory, staff_member

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("frozen")]

PATIENTS = reverse("admin:patients_patient_changelist")
OPT_OUTS = reverse("admin:patients_smsoptout_changelist")


def change_url(patient) -> str:
    return reverse("admin:patients_patient_change", args=[patient.pk])


def chart_data(patient, **overrides) -> dict:
    """What the change form posts for `patient` as it is, with `overrides`."""
    data = {
        "chart_number": patient.chart_number, "first_name": patient.first_name, "last_name": patient.last_name,
        "date_of_birth": patient.date_of_birth.isoformat() if patient.date_of_birth else "",
        "birth_sex": patient.birth_sex, "email": patient.email, "phone": patient.phone,
        "mobile_phone": patient.mobile_phone, "zip_code": patient.zip_code,
        "email_consent": "on" if patient.email_consent else None, "sms_consent": "on" if patient.sms_consent else None,
        "deceased": "on" if patient.deceased else None, "self_signup_unverified": None,
        "preferred_language": patient.preferred_language,
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


# -- practice settings --------------------------------------------------------------------------


def practice_data(practice, **overrides) -> dict:
    data = {
        "name": practice.name, "time_zone": practice.time_zone, "contact_email": practice.contact_email,
        "contact_phone": practice.contact_phone, "invitations_enabled": "on", "activation_email_enabled": "on",
        "link_lifetime_days": 7, "monthly_reinvite_day": 1, "monthly_reinvite_cap": 3, "staff_idle_minutes": 30, "country": practice.country,
        "bulk_channels": practice.bulk_channels, "default_language": practice.default_language,
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def test_the_practice_page_has_the_text_settings_in_the_portal_section_with_help(client, practice_a):
    client.force_login(staff_member(practice_a, Role.ADMIN, username="admin_a"))
    response = client.get(reverse("admin:patients_practice_change", args=[practice_a.pk]))
    form = response.context["adminform"]
    portal = next(fieldset for fieldset in form if fieldset.name == "Patient portal")
    assert {"text_invitations_enabled", "country", "bulk_channels"} <= set(portal.fields)
    help_texts = {name: str(form.form.fields[name].help_text) for name in ("text_invitations_enabled", "country", "bulk_channels")}
    assert "consented to texts" in help_texts["text_invitations_enabled"]
    assert "without a country code" in help_texts["country"]
    assert "Texts go only while invitation texts are enabled" in help_texts["bulk_channels"]


def test_a_practice_admin_turns_texts_on_and_the_change_is_audited(client, practice_a):
    client.force_login(staff_member(practice_a, Role.ADMIN, username="admin_a"))
    url = reverse("admin:patients_practice_change", args=[practice_a.pk])
    response = client.post(url, practice_data(
        practice_a, text_invitations_enabled="on", country="GB", bulk_channels=BulkChannels.EMAIL_THEN_TEXT,
    ))
    assert response.status_code == 302
    practice_a.refresh_from_db()
    assert (practice_a.text_invitations_enabled, practice_a.country, practice_a.bulk_channels) == (
        True, "GB", BulkChannels.EMAIL_THEN_TEXT,
    )
    entry = AuditEntry.objects.get(action=AuditAction.PRACTICE_SETTINGS)
    assert entry.details == {"text_invitations_enabled": True, "country": "GB", "bulk_channels": "email_then_text"}
    assert not any("emails only" in str(m) for m in response.wsgi_request._messages)


def test_choosing_texts_for_bulk_runs_while_texts_are_off_says_only_emails_go(client, practice_a):
    client.force_login(staff_member(practice_a, Role.ADMIN, username="admin_a"))
    url = reverse("admin:patients_practice_change", args=[practice_a.pk])
    response = client.post(url, practice_data(practice_a, bulk_channels=BulkChannels.BOTH), follow=True)
    assert "send emails only until invitation texts are enabled" in response.content.decode()


def test_the_front_desk_cannot_change_the_text_settings(client_a, practice_a):
    response = client_a.post(
        reverse("admin:patients_practice_change", args=[practice_a.pk]), practice_data(practice_a, text_invitations_enabled="on"),
    )
    assert response.status_code in (403, 404)
    practice_a.refresh_from_db()
    assert practice_a.text_invitations_enabled is False


# -- the chart's mobile number -----------------------------------------------------------------


def test_a_mobile_number_typed_the_local_way_is_kept_in_international_form(client_a, practice_a):
    patient = PatientFactory(practice=practice_a)
    response = client_a.post(change_url(patient), chart_data(patient, mobile_phone="(617) 555-0123"))
    assert response.status_code == 302
    patient.refresh_from_db()
    assert patient.mobile_phone == "+16175550123"


def test_a_number_is_read_in_the_practices_country(client, practice_a):
    british = PracticeFactory(name="Practice UK", country="GB")
    client.force_login(staff_member(british, Role.FRONT_DESK, username="desk_uk"))
    patient = PatientFactory(practice=british)
    assert client.post(change_url(patient), chart_data(patient, mobile_phone="07400 123456")).status_code == 302
    patient.refresh_from_db()
    assert patient.mobile_phone == "+447400123456"
    page = client.get(change_url(patient)).content.decode()
    assert 'value="07400 123456"' in page  # shown as staff there read it


@pytest.mark.parametrize(
    "typed,problem",
    [("617555012", "it has 9 digits; US numbers have 10"), ("call me", "is not a phone number"), ("555-0123", "no area code")],
)
def test_a_bad_mobile_number_is_an_error_on_its_field_saying_what_is_wrong(client_a, practice_a, typed, problem):
    patient = PatientFactory(practice=practice_a)
    response = client_a.post(change_url(patient), chart_data(patient, mobile_phone=typed))
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert set(errors) == {"mobile_phone"} and problem in errors["mobile_phone"][0]
    patient.refresh_from_db()
    assert patient.mobile_phone == ""


def test_the_stored_number_is_shown_as_staff_read_it_and_retyping_it_is_no_change(client_a, practice_a):
    patient = PatientFactory(practice=practice_a, mobile_phone="+16175550123")
    page = client_a.get(change_url(patient)).content.decode()
    assert 'value="(617) 555-0123"' in page
    response = client_a.post(change_url(patient), chart_data(patient, mobile_phone="617.555.0123"))
    assert response.status_code == 302
    assert not AuditEntry.objects.filter(action=AuditAction.PATIENT_CHANGED).exists()  # nothing changed
    client_a.post(change_url(patient), chart_data(patient, mobile_phone="617 555 0199"))
    assert AuditEntry.objects.get(action=AuditAction.PATIENT_CHANGED).details == {"fields": ["mobile_phone"]}


def test_a_viewer_reads_the_number_as_staff_do(client, practice_a):
    client.force_login(staff_member(practice_a, Role.VIEWER, username="viewer_a"))
    patient = PatientFactory(practice=practice_a, mobile_phone="+16175550123")
    page = client.get(change_url(patient)).content.decode()
    assert "(617) 555-0123" in page and "+16175550123" not in page


def test_the_patient_list_shows_mobile_numbers_as_staff_read_them_without_a_query_per_row(
    client_a, practice_a, django_assert_max_num_queries
):
    british = PracticeFactory(name="Practice UK", country="GB")
    for n in range(30):
        PatientFactory(practice=practice_a, mobile_phone=f"+1617555{n:04d}", last_name=f"Mobile{n:02d}")
    PatientFactory(practice=british, mobile_phone="+447400123456")
    with django_assert_max_num_queries(9):  # 8 today; a query per row would add 30
        response = client_a.get(PATIENTS)
    page = response.content.decode()
    assert "(617) 555-0007" in page and "+16175550007" not in page
    assert "7400 123456" not in page  # another practice's patient


def test_the_list_filters_by_text_consent(client_a, practice_a):
    PatientFactory(practice=practice_a, last_name="Texts", texting=True)
    PatientFactory(practice=practice_a, last_name="Notexts")
    response = client_a.get(PATIENTS, {"sms_consent__exact": "1"})
    assert [p.last_name for p in response.context["cl"].result_list] == ["Texts"]


# -- text consent --------------------------------------------------------------------------------


def test_giving_and_withdrawing_text_consent_is_recorded_with_who_and_when(client_a, practice_a, front_desk_a, frozen):
    front_desk_a.first_name, front_desk_a.last_name = "Frankie", "Desk"
    front_desk_a.save()
    patient = PatientFactory(practice=practice_a, mobile_phone="+16175550123")
    page = client_a.get(change_url(patient)).content.decode()
    assert "Never given." in page

    assert client_a.post(change_url(patient), chart_data(patient, sms_consent="on")).status_code == 302
    patient.refresh_from_db()
    assert patient.sms_consent and patient.sms_consent_changed_at == NOW and patient.sms_consent_changed_by == front_desk_a
    assert "Given by Frankie Desk on March 2, 2026." in client_a.get(change_url(patient)).content.decode()

    later = NOW + datetime.timedelta(days=3)
    frozen.move_to(later)
    client_a.post(change_url(patient), chart_data(patient, sms_consent=None, first_name="Janet"))
    patient.refresh_from_db()
    assert not patient.sms_consent and patient.sms_consent_changed_at == later
    assert "Withdrawn by Frankie Desk on March 5, 2026." in client_a.get(change_url(patient)).content.decode()

    frozen.move_to(later + datetime.timedelta(days=1))
    client_a.post(change_url(patient), chart_data(patient, first_name="Jan"))  # consent untouched
    patient.refresh_from_db()
    assert patient.sms_consent_changed_at == later


def test_the_consent_date_is_the_practices_day(client_a, practice_a):
    practice_a.time_zone = "Pacific/Auckland"  # 2 March 15:00 UTC is already 3 March there
    practice_a.save()
    patient = PatientFactory(practice=practice_a)
    client_a.post(change_url(patient), chart_data(patient, sms_consent="on", mobile_phone="6175550123"))
    assert "on March 3, 2026." in client_a.get(change_url(patient)).content.decode()


def test_consent_ticked_on_a_new_patient_is_recorded_and_unticked_is_not(client_a, practice_a, front_desk_a):
    url = reverse("admin:patients_patient_add")
    base = {"practice": practice_a.pk, "first_name": "Ann", "last_name": "Lee", "mobile_phone": "617-555-0123", "preferred_language": "en"}
    assert client_a.post(url, {**base, "chart_number": "T1", "sms_consent": "on"}).status_code == 302
    assert client_a.post(url, {**base, "chart_number": "T2"}).status_code == 302
    given, never = Patient.objects.get(chart_number="T1"), Patient.objects.get(chart_number="T2")
    assert (given.sms_consent_changed_by, given.sms_consent_changed_at, given.mobile_phone) == (front_desk_a, NOW, "+16175550123")
    assert (never.sms_consent_changed_by, never.sms_consent_changed_at) == (None, None)


def test_a_consent_from_before_the_record_says_so(client_a, practice_a):
    patient = PatientFactory(practice=practice_a, texting=True, mobile_phone="+16175550123")
    assert "Given; when and by whom was not recorded." in client_a.get(change_url(patient)).content.decode()


# -- a number the text service could not deliver to ----------------------------------------------


def test_the_undeliverable_reason_shows_while_it_is_the_number_on_file_and_a_new_number_lifts_it(client_a, practice_a):
    patient = PatientFactory(
        practice=practice_a, mobile_phone="+16175550123", undeliverable_mobile="+16175550123",
        undeliverable_mobile_reason="The number is a landline", texting=True,
    )
    page = client_a.get(change_url(patient)).content.decode()
    assert "Cannot be delivered: The number is a landline." in page

    assert client_a.post(change_url(patient), chart_data(patient, mobile_phone="(617) 555-0199")).status_code == 302
    patient.refresh_from_db()
    assert patient.mobile_phone == "+16175550199"
    assert "Cannot be delivered" not in client_a.get(change_url(patient)).content.decode()


def test_retyping_the_undeliverable_number_keeps_its_mark(client_a, practice_a):
    patient = PatientFactory(practice=practice_a, mobile_phone="+16175550123", undeliverable_mobile="+16175550123",
                             undeliverable_mobile_reason="Unknown number")
    client_a.post(change_url(patient), chart_data(patient, mobile_phone="617-555-0123"))
    assert "Cannot be delivered: Unknown number." in client_a.get(change_url(patient)).content.decode()


# -- another practice's patients ---------------------------------------------------------------------


def test_the_front_desk_cannot_mark_text_consent_or_a_number_on_another_practices_patient(client_a, practice_b):
    patient = PatientFactory(practice=practice_b)
    response = client_a.post(change_url(patient), chart_data(patient, sms_consent="on", mobile_phone="6175550123"))
    assert response.status_code == 404
    patient.refresh_from_db()
    assert (patient.sms_consent, patient.mobile_phone, patient.sms_consent_changed_at) == (False, "", None)
    assert client_a.get(change_url(patient)).status_code == 404


# -- the text opt-out list -------------------------------------------------------------------------


@pytest.fixture
def opt_outs(practice_a, practice_b):
    return {
        "a": SmsOptOut.objects.create(practice=practice_a, phone="+16175550101", reason=SmsOptOutReason.STOP_REPLY),
        "b": SmsOptOut.objects.create(practice=practice_b, phone="+16175550202", reason=SmsOptOutReason.STOP_REPLY),
    }


def test_the_opt_out_list_shows_only_the_practices_own_numbers_as_staff_read_them(client_a, opt_outs):
    response = client_a.get(OPT_OUTS)
    assert response.status_code == 200
    assert [o.pk for o in response.context["cl"].result_list] == [opt_outs["a"].pk]
    page = response.content.decode()
    assert "(617) 555-0101" in page and "555-0202" not in page


@pytest.mark.parametrize("view", ["change", "delete", "history"])
def test_another_practices_opt_out_is_a_404(client_a, opt_outs, view):
    assert client_a.get(reverse(f"admin:patients_smsoptout_{view}", args=[opt_outs["b"].pk])).status_code == 404


def test_a_manager_cannot_delete_another_practices_opt_out(client, practice_a, opt_outs):
    client.force_login(staff_member(practice_a, Role.MANAGER, username="manager_a"))
    url = reverse("admin:patients_smsoptout_delete", args=[opt_outs["b"].pk])
    assert client.post(url, {"post": "yes"}).status_code == 404
    response = client.post(OPT_OUTS, {"action": "delete_selected", "_selected_action": [opt_outs["b"].pk], "post": "yes"})
    assert response.status_code in (200, 302)
    assert SmsOptOut.objects.filter(pk=opt_outs["b"].pk).exists()
    # Their own practice's entry they may remove, and the removal is audited.
    assert client.post(reverse("admin:patients_smsoptout_delete", args=[opt_outs["a"].pk]), {"post": "yes"}).status_code == 302
    assert not SmsOptOut.objects.filter(pk=opt_outs["a"].pk).exists()
    assert AuditEntry.objects.get(action=AuditAction.OPT_OUT_REMOVED).practice == practice_a


def test_the_front_desk_cannot_remove_an_opt_out(client_a, opt_outs):
    assert client_a.post(reverse("admin:patients_smsoptout_delete", args=[opt_outs["a"].pk]), {"post": "yes"}).status_code == 403
    assert SmsOptOut.objects.filter(pk=opt_outs["a"].pk).exists()


def test_the_add_form_offers_only_the_users_practices(client_a, practice_a, practice_b):
    form = client_a.get(reverse("admin:patients_smsoptout_add")).context["adminform"].form
    assert list(form.fields["practice"].queryset) == [practice_a]
    response = client_a.post(reverse("admin:patients_smsoptout_add"), {"practice": practice_b.pk, "phone": "6175550303", "reason": "staff"})
    assert response.status_code == 200 and "practice" in response.context["adminform"].form.errors
    assert not SmsOptOut.objects.filter(practice=practice_b).exists()


def test_a_number_added_the_local_way_is_kept_in_international_form_and_audited(client_a, practice_a, front_desk_a):
    response = client_a.post(reverse("admin:patients_smsoptout_add"), {"practice": practice_a.pk, "phone": "(617) 555-0303", "reason": "staff"})
    assert response.status_code == 302
    entry = SmsOptOut.objects.get(practice=practice_a)
    assert (entry.phone, entry.created_by) == ("+16175550303", front_desk_a)
    assert AuditEntry.objects.get(action=AuditAction.OPT_OUT_ADDED).practice == practice_a


@pytest.mark.parametrize(
    "typed,problem", [("555-0303", "no area code"), ("", "This field is required"), ("(617) 555-0101", "already on the practice's text opt-out list")],
)
def test_a_bad_or_listed_number_is_an_error_on_its_field(client_a, practice_a, opt_outs, typed, problem):
    response = client_a.post(reverse("admin:patients_smsoptout_add"), {"practice": practice_a.pk, "phone": typed, "reason": "staff"})
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert any(problem in e for e in errors.get("phone", []) + errors.get("__all__", []))
    assert SmsOptOut.objects.filter(practice=practice_a).count() == 1


def test_a_number_searched_the_local_way_is_found_in_the_practice_only(client_a, opt_outs):
    found = client_a.get(OPT_OUTS, {"q": "(617) 555-0101"}).context["cl"].result_list
    assert [o.pk for o in found] == [opt_outs["a"].pk]
    assert list(client_a.get(OPT_OUTS, {"q": "617 555 0202"}).context["cl"].result_list) == []
    assert client_a.get(OPT_OUTS, {"q": "not a number"}).status_code == 200


def test_a_viewer_sees_the_list_but_cannot_add(client, practice_a, opt_outs):
    client.force_login(staff_member(practice_a, Role.VIEWER, username="viewer_a"))
    assert client.get(OPT_OUTS).status_code == 200
    assert client.post(reverse("admin:patients_smsoptout_add"), {"practice": practice_a.pk, "phone": "6175550404"}).status_code == 403



def test_a_valid_number_typed_with_more_punctuation_than_the_stored_form_is_accepted():
    practice = PracticeFactory(country="GB")
    patient = Patient(practice=practice, chart_number="L1", mobile_phone="+44 7911 - 123 - 456   ")
    patient.clean_fields()
    assert patient.mobile_phone == "+447911123456"


def test_a_text_opt_out_reports_a_bad_number_and_its_other_field_errors_together():
    entry = SmsOptOut(practice=PracticeFactory(), phone="555", reason="nonsense")
    with pytest.raises(ValidationError) as raised:
        entry.clean_fields()
    assert set(raised.value.message_dict) == {"phone", "reason"}
