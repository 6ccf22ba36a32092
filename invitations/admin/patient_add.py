"""The front desk's choice of channel when inviting one patient ("Send by": email, text message,
both, or the default: email, or a text when email cannot be used), on the add form's "Send
portal invitation" and the patient page's Send invitation / Resend buttons.

Texts are offered only where the practice has them enabled; elsewhere the forms look as they
always did and the default is exactly "email". The choice becomes an eligibility plan
(`eligibility.PLAN_OF_SEND_BY`), so the reasons shown are those of the chosen channels.
"""

from typing import Optional

from django import forms

from core.phones import display_phone
from patients.admin import PatientAdminForm

from invitations import eligibility
from invitations.models import Invitation
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
