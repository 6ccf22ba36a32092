"""The front desk's side of invitations by text: "Send by" on the add form and on the patient page's
buttons (offered only where the practice sends texts; the reasons of the chosen channels on the
right fields), the list actions' default, and the invitation admin's channels, text state and
timeline. Another practice's patients stay out of reach with every choice."""

import datetime
import json

import pytest
from django.urls import reverse

from invitations.models import (
    EventKind,
    Invitation,
    RevokeReason,
    Source,
    Status,
    TextStatus,
)
from invitations.vocabulary import Channel, SendBy
from patients.models import Membership, Patient, Role, SmsOptOut
from tests.clock import NOW
from tests.factories import PatientFactory, staff_member
from tests.invitations.factories import InvitationFactory
from tests.invitations.patient_admin import (
    add_patient_data,
    invitation_url,
    messages_of,
    post_action,
)
from tests.patients.test_admin_texts import chart_data

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("frozen")]

ADD = reverse("admin:patients_patient_add")
INVITATIONS = reverse("admin:invitations_invitation_changelist")


@pytest.fixture
def texting_a(practice_a):
    practice_a.text_invitations_enabled = True
    practice_a.save()
    return practice_a


def page_of(client, patient) -> str:
    return client.get(reverse("admin:patients_patient_change", args=[patient.pk])).content.decode()


def textable(practice, **fields) -> Patient:
    return PatientFactory(practice=practice, mobile_phone="+16175550123", texting=True, **fields)


# -- the add form --------------------------------------------------------------------------------


def test_send_by_is_offered_on_the_add_form_only_where_the_practice_texts(client_a, practice_a):
    form = client_a.get(ADD).context["adminform"].form
    assert "send_by" not in form.fields  # the email-only look, unchanged
    practice_a.text_invitations_enabled = True
    practice_a.save()
    response = client_a.get(ADD)
    form = response.context["adminform"].form
    assert [value for value, _ in form.fields["send_by"].choices] == list(SendBy.values)
    content = response.content.decode()
    assert content.index("id_send_invitation") < content.index("id_send_by") < content.index("id_chart_number")


def test_the_checklist_marks_what_a_text_needs_when_a_text_is_chosen(client_a, practice_a):
    def needed(content):
        start = content.index('<script id="needed-for-invitation" type="application/json">')
        return json.loads(content[content.index(">", start) + 1:content.index("</script>", start)])

    assert needed(client_a.get(ADD).content.decode()) == {
        "auto": ["first_name", "last_name", "date_of_birth", "zip_code", "email", "birth_sex", "email_consent"],
    }
    practice_a.text_invitations_enabled = True
    practice_a.save()
    by_choice = needed(client_a.get(ADD).content.decode())
    assert by_choice["text"] == ["first_name", "last_name", "date_of_birth", "zip_code", "birth_sex", "mobile_phone", "sms_consent"]
    assert {"email", "email_consent", "mobile_phone", "sms_consent"} <= set(by_choice["both"])
    assert "mobile_phone" not in by_choice["email"] and by_choice["auto"] == by_choice["email"]


def test_adding_a_patient_invited_by_text_reads_the_number_and_sends_the_text_after_commit(
    client_a, texting_a, front_desk_a, eager_celery, django_capture_on_commit_callbacks
):
    data = add_patient_data(texting_a, email="", email_consent=None, mobile_phone="(617) 555-0123", sms_consent="on", send_by="text")
    with django_capture_on_commit_callbacks(execute=True):
        response = client_a.post(ADD, data)
    assert response.status_code == 302, response.context and response.context["adminform"].form.errors
    patient = Patient.objects.get(chart_number="N100")
    assert (patient.mobile_phone, patient.sms_consent_changed_by) == ("+16175550123", front_desk_a)
    invitation = patient.invitations.get()
    assert (invitation.by_email, invitation.by_text, invitation.text_to) == (False, True, "+16175550123")
    assert invitation.source == Source.NEW_PATIENT and invitation.status == Status.SENT
    assert invitation.text_status == TextStatus.QUEUED
    assert any("on its way to (617) 555-0123 (text message)" in t for t in messages_of(response))


def test_both_sends_one_invitation_by_email_and_text(client_a, texting_a):
    response = client_a.post(ADD, add_patient_data(texting_a, mobile_phone="617-555-0123", sms_consent="on", send_by="both"))
    assert response.status_code == 302
    invitation = Patient.objects.get(chart_number="N100").invitations.get()
    assert (invitation.by_email, invitation.by_text, invitation.email) == (True, True, "ann@example.com")
    assert any("on its way to ann@example.com and (617) 555-0123 (text message)" in t for t in messages_of(response))


def test_a_text_choice_marks_what_the_text_needs_on_its_fields_and_saves_nothing(client_a, texting_a):
    response = client_a.post(ADD, add_patient_data(texting_a, email="", email_consent=None, send_by="text"))
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert set(errors) == {"mobile_phone", "sms_consent"}  # email is not needed for a text
    assert errors["mobile_phone"][0].startswith("Mobile phone number is missing. Needed for the portal invitation")
    assert errors["sms_consent"][0].startswith("The patient has not consented to text messages.")
    assert not Patient.objects.filter(chart_number="N100").exists()


def test_both_needs_what_each_channel_needs(client_a, texting_a):
    response = client_a.post(ADD, add_patient_data(texting_a, email_consent=None, mobile_phone="6175550123", send_by="both"))
    errors = response.context["adminform"].form.errors
    assert set(errors) == {"email_consent", "sms_consent"}


def test_the_default_where_neither_channel_works_says_which_channel_needs_what(client_a, texting_a):
    response = client_a.post(ADD, add_patient_data(texting_a, email="", zip_code=""))
    errors = response.context["adminform"].form.errors
    assert errors["zip_code"][0].startswith("ZIP code is missing. Needed for the portal invitation")
    assert errors["email"] == ["Email address is missing. Needed to invite by email."]
    assert errors["mobile_phone"] == ["Mobile phone number is missing. Needed to invite by text message."]
    assert errors["sms_consent"] == ["The patient has not consented to text messages. Needed to invite by text message."]
    assert errors["send_by"][0].startswith("Neither an email nor a text message can be sent")
    assert not Patient.objects.exists()


def test_the_default_texts_a_patient_who_cannot_get_an_email(client_a, texting_a):
    response = client_a.post(ADD, add_patient_data(texting_a, email="", mobile_phone="6175550123", sms_consent="on"))
    assert response.status_code == 302
    invitation = Patient.objects.get(chart_number="N100").invitations.get()
    assert (invitation.by_email, invitation.by_text) == (False, True)


def test_the_default_emails_where_the_practice_does_not_text_and_a_forged_choice_is_ignored(client_a, practice_a):
    response = client_a.post(ADD, add_patient_data(practice_a, mobile_phone="6175550123", sms_consent="on", send_by="text"))
    assert response.status_code == 302
    invitation = Patient.objects.get(chart_number="N100").invitations.get()
    assert (invitation.by_email, invitation.by_text) == (True, False)
    assert any("on its way to ann@example.com." in t for t in messages_of(response))


def test_a_number_on_the_opt_out_list_typed_the_local_way_is_refused_on_its_field(client_a, texting_a):
    SmsOptOut.objects.create(practice=texting_a, phone="+16175550123")
    response = client_a.post(ADD, add_patient_data(texting_a, mobile_phone="(617) 555-0123", sms_consent="on", send_by="text"))
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["mobile_phone"][0].startswith("The mobile number replied STOP")


def test_a_bad_number_is_its_own_error_before_the_invitation_rules(client_a, texting_a):
    response = client_a.post(ADD, add_patient_data(texting_a, mobile_phone="555-0123", sms_consent="on", send_by="text"))
    errors = response.context["adminform"].form.errors
    assert set(errors) == {"mobile_phone"} and "no area code" in errors["mobile_phone"][0]
    assert not Patient.objects.exists()


def test_an_unknown_choice_is_an_error_on_the_choice(client_a, texting_a):
    response = client_a.post(ADD, add_patient_data(texting_a, send_by="fax"))
    assert "send_by" in response.context["adminform"].form.errors
    assert not Patient.objects.exists()


def test_a_text_chosen_for_a_practice_that_does_not_text_is_refused_on_the_choice(client, texting_a, practice_b):
    user = staff_member(texting_a, Role.FRONT_DESK, username="two_practices")
    Membership.objects.create(user=user, practice=practice_b, role=Role.FRONT_DESK)
    client.force_login(user)
    response = client.post(ADD, add_patient_data(practice_b, mobile_phone="6175550123", sms_consent="on", send_by="text"))
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["send_by"][0].startswith("Invitation texts are turned off for this practice")


# -- the patient page's buttons ------------------------------------------------------------------


def test_the_page_offers_the_choice_only_where_the_practice_texts_and_says_what_stops_a_channel(client_a, practice_a):
    patient = PatientFactory(practice=practice_a, mobile_phone="+16175550123")
    assert 'name="send_by"' not in page_of(client_a, patient)
    practice_a.text_invitations_enabled = True
    practice_a.save()
    content = page_of(client_a, patient)
    assert 'name="send_by"' in content and "Email and text message" in content
    assert "Text message cannot be used now: The patient has not consented to text messages." in content
    assert "Email cannot be used" not in content


@pytest.mark.parametrize("send_by,channels", [("text", (False, True)), ("both", (True, True)), ("email", (True, False)), ("", (True, False))])
def test_the_invite_button_sends_by_the_chosen_channels(client_a, texting_a, front_desk_a, send_by, channels):
    patient = textable(texting_a)
    response = client_a.post(invitation_url(patient, "invite"), {"send_by": send_by})
    assert response.status_code == 302
    invitation = patient.invitations.get()
    assert (invitation.by_email, invitation.by_text) == channels
    assert invitation.created_by == front_desk_a and invitation.source == Source.MANUAL


def test_a_channel_that_cannot_be_used_is_reported_and_nothing_is_made(client_a, texting_a):
    patient = PatientFactory(practice=texting_a)  # no mobile number
    response = client_a.post(invitation_url(patient, "invite"), {"send_by": "text"}, follow=True)
    assert any("Skipped 1" in t and "Mobile phone number is missing." in t for t in messages_of(response))
    assert not patient.invitations.exists()


def test_an_unknown_choice_on_a_button_is_refused_with_a_message(client_a, texting_a):
    patient = textable(texting_a)
    response = client_a.post(invitation_url(patient, "invite"), {"send_by": "pigeon"})
    assert response.status_code == 302
    assert "Choose how to send the invitation: email, text message or both." in messages_of(response)
    assert not patient.invitations.exists()


def test_resend_by_text_says_where_the_text_goes_and_keeps_the_choice_through_the_confirmation(client_a, texting_a):
    old = InvitationFactory(patient=textable(texting_a), created_at=NOW - datetime.timedelta(hours=2))
    patient = old.patient
    confirm = client_a.post(invitation_url(patient, "resend"), {"send_by": "text"})
    content = confirm.content.decode()
    assert confirm.status_code == 200
    assert "by text message to (617) 555-0123" in content and "by email" not in content
    assert '<input type="hidden" name="send_by" value="text">' in content
    assert client_a.post(invitation_url(patient, "resend"), {"send_by": "text", "confirm": "yes"}).status_code == 302
    old.refresh_from_db()
    assert old.revoke_reason == RevokeReason.RESENT
    new = patient.invitations.get(status=Status.PENDING)
    assert (new.by_email, new.by_text, new.source) == (False, True, Source.RESEND)


@pytest.mark.parametrize("operation", ["invite", "resend"])
@pytest.mark.parametrize("send_by", ["text", "both"])
def test_another_practices_patient_cannot_be_invited_by_any_channel(client_a, practice_b, operation, send_by):
    practice_b.text_invitations_enabled = True
    practice_b.save()
    patient = textable(practice_b)
    response = client_a.post(invitation_url(patient, operation), {"send_by": send_by, "confirm": "yes"})
    assert response.status_code == 404
    assert not Invitation.objects.exists()


def test_the_list_actions_keep_the_default_plan(client_a, texting_a):
    by_email = textable(texting_a, last_name="Hasemail")
    by_text = textable(texting_a, last_name="Noemail", email="")
    response = post_action(client_a, "invite_selected", [by_email, by_text], send_by="both")  # not an action's field
    assert "Invited 2 patients." in messages_of(response)
    assert (by_email.invitations.get().by_email, by_email.invitations.get().by_text) == (True, False)
    assert (by_text.invitations.get().by_email, by_text.invitations.get().by_text) == (False, True)


# -- the patient page's portal box ---------------------------------------------------------------


def test_the_portal_box_and_timeline_say_where_the_text_went_and_how_it_fared(client_a, texting_a):
    invitation = InvitationFactory(
        patient=textable(texting_a), email="", by_email=False, by_text=True, text_to="+16175550123", sent_at=None,
        text_sent_at=NOW, text_status=TextStatus.UNDELIVERED, text_error="Carrier rejected the message (30007)",
    )
    invitation.record(EventKind.TEXT_QUEUED, now=NOW, detail="To …0123")
    invitation.record(EventKind.TEXT_UNDELIVERED, now=NOW, detail="Carrier rejected the message (30007)")
    content = page_of(client_a, invitation.patient)
    assert "An invitation went to <strong>(617) 555-0123 (text message)</strong> on March 2, 2026" in content
    assert "Text message: Not delivered. Carrier rejected the message (30007)." in content
    assert "Manual invitation to (617) 555-0123 (text message)" in content
    assert "Text handed to the text service" in content and "Text not delivered" in content


def test_changing_the_mobile_number_says_the_text_link_to_the_old_number_was_revoked(client_a, texting_a):
    invitation = InvitationFactory(patient=textable(texting_a), email="", by_email=False, by_text=True, text_to="+16175550123")
    patient = invitation.patient
    response = client_a.post(
        reverse("admin:patients_patient_change", args=[patient.pk]), chart_data(patient, mobile_phone="617 555 0199", email="new@example.com"),
    )
    assert response.status_code == 302
    assert any(t.startswith("The mobile number changed, so the invitation texted to the old number was revoked") for t in messages_of(response))
    invitation.refresh_from_db()
    assert invitation.revoke_reason == RevokeReason.MOBILE_CHANGED


def test_an_undeliverable_number_blocks_texts_until_the_number_changes(client_a, texting_a):
    patient = textable(texting_a, email="", undeliverable_mobile="+16175550123", undeliverable_mobile_reason="Landline")
    response = client_a.post(invitation_url(patient, "invite"), {"send_by": "text"}, follow=True)
    assert any("Texts to this number cannot be delivered" in t for t in messages_of(response))
    client_a.post(reverse("admin:patients_patient_change", args=[patient.pk]), chart_data(patient, mobile_phone="6175550199"))
    assert client_a.post(invitation_url(patient, "invite"), {"send_by": "text"}).status_code == 302
    assert patient.invitations.get().text_to == "+16175550199"


# -- the invitation admin --------------------------------------------------------------------------


@pytest.fixture
def sent_each_way(texting_a):
    return {
        "email": InvitationFactory(patient=PatientFactory(practice=texting_a, last_name="Emailonly")),
        "text": InvitationFactory(
            patient=textable(texting_a, last_name="Textonly"), email="", by_email=False, by_text=True, text_to="+16175550123",
            text_status=TextStatus.DELIVERED, status=Status.ACCEPTED, accepted_via=Channel.TEXT,
        ),
        "both": InvitationFactory(
            patient=textable(texting_a, last_name="Bothways"), by_text=True, text_to="+16175550456",
            text_status=TextStatus.UNDELIVERED, text_error="Unknown destination (30005)",
        ),
    }


def test_the_invitation_list_shows_channels_text_state_and_only_the_numbers_last_digits(client_a, sent_each_way):
    response = client_a.get(INVITATIONS)
    content = response.content.decode()
    assert "Email and text" in content
    assert "Delivered (…0123)" in content and "Not delivered (…0456)" in content
    assert "Text: Unknown destination (30005)" in content
    assert "555-0123" not in content and "6175550123" not in content and "555-0456" not in content
    cl = response.context["cl"]
    rows = {i.patient.last_name: i for i in cl.result_list}
    admin = cl.model_admin
    assert [admin.channels(rows[n]) for n in ("Emailonly", "Textonly", "Bothways")] == ["Email", "Text", "Email and text"]
    assert rows["Textonly"].get_accepted_via_display() == "Text message"


@pytest.mark.parametrize("channel,expected", [("email", ["Emailonly"]), ("text", ["Textonly"]), ("both", ["Bothways"])])
def test_the_invitation_list_filters_by_channel(client_a, sent_each_way, channel, expected):
    response = client_a.get(INVITATIONS, {"channel": channel})
    assert [i.patient.last_name for i in response.context["cl"].result_list] == expected


def test_the_invitation_list_filters_by_the_texts_state(client_a, sent_each_way):
    response = client_a.get(INVITATIONS, {"text_status__exact": TextStatus.UNDELIVERED})
    assert [i.patient.last_name for i in response.context["cl"].result_list] == ["Bothways"]


def test_the_invitation_page_shows_the_whole_number_the_texts_state_and_how_the_patient_registered(client_a, sent_each_way):
    text_only = sent_each_way["text"]
    text_only.record(EventKind.TEXT_DELIVERED, now=NOW)
    response = client_a.get(reverse("admin:invitations_invitation_change", args=[text_only.pk]))
    content = response.content.decode()
    assert "(617) 555-0123" in content and "Text message" in content and "Text delivered" in content
    names = [name for name, _ in response.context["adminform"].fieldsets]
    assert names == [None, "Text message"]  # no email section for a text-only invitation
    both = client_a.get(reverse("admin:invitations_invitation_change", args=[sent_each_way["both"].pk]))
    assert [name for name, _ in both.context["adminform"].fieldsets] == [None, "Email", "Text message"]
    assert "Unknown destination (30005)" in both.content.decode()


def test_the_invitation_list_with_texts_makes_no_query_per_row(client_a, texting_a, django_assert_max_num_queries):
    for n in range(25):
        InvitationFactory(patient=textable(texting_a), by_text=True, text_to=f"+1617555{n:04d}", text_status=TextStatus.SENT)
    with django_assert_max_num_queries(9):  # 8 today; a query per row would add 25
        assert client_a.get(INVITATIONS).status_code == 200


def test_another_practices_text_invitations_stay_out_of_the_invitation_admin(client_a, practice_b):
    other = InvitationFactory(patient=textable(practice_b, last_name="Otherpractice"), by_text=True, text_to="+16175550123")
    assert "Otherpractice" not in client_a.get(INVITATIONS, {"channel": "both"}).content.decode()
    assert client_a.get(reverse("admin:invitations_invitation_change", args=[other.pk])).status_code == 404


def test_a_viewer_gets_no_send_by_choice(client, texting_a):
    client.force_login(staff_member(texting_a, Role.VIEWER, username="viewer_a"))
    patient = textable(texting_a)
    assert 'name="send_by"' not in page_of(client, patient)
    assert client.post(invitation_url(patient, "invite"), {"send_by": "text"}).status_code == 403

