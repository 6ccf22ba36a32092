""""Send portal invitation" on the add-patient form, and the front desk's choice of channel when inviting one patient ("Send by": email, text message,
both, or the default: email, or a text when email cannot be used), on the add form's "Send
portal invitation" and the patient page's Send invitation / Resend buttons.

Texts are offered only where the practice has them enabled; elsewhere the forms look as they
always did and the default is exactly "email". The choice becomes an eligibility plan
(`eligibility.PLAN_OF_SEND_BY`), so the reasons shown are those of the chosen channels.
"""

from typing import Optional

from django import forms
from django.contrib import messages
from django.utils import timezone

from core.phones import display_phone
from patients import tenancy
from patients.admin.patients import PatientAdminForm
from patients.models import Patient, Practice

from invitations import eligibility, services
from invitations.models import Invitation, Source
from invitations.vocabulary import Channel, SendBy

#: The add form's fields that only an email needs (the rest of NEEDED_FOR_INVITATION any invitation needs).
EMAIL_ONLY_FIELDS = {
    field for code, field in eligibility.RULE_FIELDS.items() if eligibility.RULES_BY_CODE[code].channel == Channel.EMAIL
}
_COMMON_FIELDS = [name for name in eligibility.NEEDED_FOR_INVITATION if name not in EMAIL_ONLY_FIELDS]
#: What the add form's checklist marks for each choice (the default is an email, so it marks email's).
NEEDED_BY_SEND_BY = {
    SendBy.AUTO: list(eligibility.NEEDED_FOR_INVITATION),
    SendBy.EMAIL: list(eligibility.NEEDED_FOR_INVITATION),
    SendBy.TEXT: [*_COMMON_FIELDS, *eligibility.NEEDED_FOR_TEXT],
    SendBy.BOTH: [*eligibility.NEEDED_FOR_INVITATION, *eligibility.NEEDED_FOR_TEXT],
}
SEND_BY_HELP = (
    "A text goes only to a patient with a mobile number on the chart who consented to texts. The default "
    "sends an email, or a text when the patient cannot get an email."
)


def read_send_by(value: Optional[str]) -> Optional[str]:
    """A posted choice as a SendBy value (nothing chosen is the default); None when it is none of them."""
    if not value:
        return SendBy.AUTO
    return value if value in SendBy.values else None


def recipients(invitation: Invitation, region: str) -> str:
    """Where an invitation went, as staff read it: "ann@example.com and (617) 555-0123 (text message)"."""
    parts = []
    if invitation.by_email and invitation.email:
        parts.append(invitation.email)
    if invitation.by_text and invitation.text_to:
        parts.append(f"{display_phone(invitation.text_to, region)} (text message)")
    return " and ".join(parts) or invitation.email


def channels_note(patient, channels) -> str:
    """What a resend would use, for its confirmation: "by email to ann@example.com"."""
    parts = []
    if Channel.EMAIL in channels:
        parts.append(f"by email to {patient.email}")
    if Channel.TEXT in channels:
        parts.append(f"by text message to {display_phone(patient.mobile_phone, patient.practice.country)}")
    return " and ".join(parts)


class PatientAddForm(PatientAdminForm):
    """The add form with "Send portal invitation": by email, or as "Send by" says where the
    practice offers texts (`PatientAddFormWithSendBy`)."""

    send_invitation = forms.BooleanField(
        label="Send portal invitation",
        required=False,
        help_text="Email this patient a link to register for the patient portal. It needs first and last "
        "name, date of birth, ZIP code, email, birth sex and the patient's consent to email; what is "
        "missing is marked before anything is saved.",
    )

    def _post_clean(self):
        # After the model's own cleaning, so the rules read the patient as it would be saved: the
        # mobile number in international form (read in the practice's country), the email trimmed.
        super()._post_clean()
        if self.errors or not self.cleaned_data.get("send_invitation") or not self.instance.practice_id:
            return
        plan = eligibility.PLAN_OF_SEND_BY[self.cleaned_data.get("send_by") or SendBy.AUTO]
        # Nothing is saved when the invitation could not be sent, so the front desk fixes it in one go.
        decision = eligibility.decide_before_saving(self.instance, plan=plan)
        # The default at a practice that texts: each channel's reasons say which channel needs them.
        either = plan == eligibility.Plan.AUTO and self.instance.practice.text_invitations_enabled
        choice_field = "send_by" if "send_by" in self.fields else "send_invitation"
        for reason in decision.reasons:
            channel = eligibility.RULES_BY_CODE[reason.code].channel
            field = eligibility.RULE_FIELDS.get(reason.code)
            if field not in self.fields:
                field = choice_field if channel else "send_invitation"
                suffix = " Choose another way to send it, or untick “Send portal invitation”." if field == "send_by" else ""
            elif either and channel:
                suffix = f" Needed to invite by {Channel(channel).label.lower()}."
            else:
                suffix = " Needed for the portal invitation: fix it, or untick “Send portal invitation”."
            self.add_error(field, reason.message + suffix)
        if either and any(eligibility.RULES_BY_CODE[r.code].channel for r in decision.reasons):
            self.add_error(
                choice_field,
                "Neither an email nor a text message can be sent: fix what is marked for one of them, or untick "
                "“Send portal invitation”.",
            )


class PatientAddFormWithSendBy(PatientAddForm):
    send_by = forms.ChoiceField(
        label="Send by", choices=SendBy.choices, initial=SendBy.AUTO, required=False, help_text=SEND_BY_HELP,
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["send_invitation"].help_text = (
            "Send this patient a link to register for the patient portal, as chosen below. What the "
            "invitation still needs is marked before anything is saved."
        )


class AddAndInvite:
    """"Send portal invitation" on the add-patient form: mixed into the patient admin
    (`invitations.admin.patients`), which supplies `can_invite`."""

    def texts_offered(self, request) -> bool:
        """Whether any practice the user may invite for sends invitation texts (asked once per request)."""
        if not hasattr(request, "_portal_texts_offered"):
            ids = tenancy.practice_ids_for(request.user, "invitations.add_invitation")
            practices = Practice.objects.all() if ids is None else Practice.objects.filter(pk__in=ids)
            request._portal_texts_offered = practices.filter(text_invitations_enabled=True).exists()
        return request._portal_texts_offered

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None and self.can_invite(request):
            kwargs["form"] = PatientAddFormWithSendBy if self.texts_offered(request) else PatientAddForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fieldsets(self, request, obj=None):
        fieldsets = super().get_fieldsets(request, obj)
        if obj is None and self.can_invite(request):
            # First on the page: ticking it marks what the invitation needs (change_form.html).
            fields = ["send_invitation", "send_by"] if self.texts_offered(request) else ["send_invitation"]
            fieldsets = [("Patient portal", {"fields": fields}), *fieldsets]
        return fieldsets

    def add_view(self, request, form_url="", extra_context=None):
        needed = NEEDED_BY_SEND_BY if self.texts_offered(request) else {SendBy.AUTO: NEEDED_BY_SEND_BY[SendBy.AUTO]}
        extra_context = {**(extra_context or {}), "needed_for_invitation": needed}
        return super().add_view(request, form_url, extra_context=extra_context)

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if not change and form.cleaned_data.get("send_invitation"):
            self._invite_new_patient(request, obj, send_by=form.cleaned_data.get("send_by") or SendBy.AUTO)

    def _invite_new_patient(self, request, patient: Patient, *, send_by: str) -> None:
        outcome = services.invite_many(
            [patient], now=timezone.now(), actor=request.user, source=Source.NEW_PATIENT, send_by=send_by,
        )
        if outcome.done:
            invitation = patient.invitations.order_by("-pk").first()
            self.message_user(
                request, f"A portal invitation is on its way to {recipients(invitation, patient.practice.country)}.",
                messages.SUCCESS,
            )
        else:
            self.message_user(
                request, f"The patient was saved, but no portal invitation was sent: {outcome.skipped[0][1]}", messages.WARNING,
            )
