"""What a representative (a parent, guardian or caregiver) reads: the invitation to act for a
patient (email and text), and the notices when their access ends or is about to. The shipped
wording, translated in the catalogs like the patient's own; no health information, only the
patient's first name and the practice's.
"""

import dataclasses
import datetime

from django.utils import translation
from django.utils.translation import gettext, gettext_noop

from core import languages
from invitations.wording import email_html, invitation_email, invitation_text

SUBJECT = gettext_noop("Your patient portal invitation from [Practice Name]")
_SENTENCES = {
    "hello": gettext_noop("Hello [First Name],"),
    "invites": gettext_noop(
        "[Practice Name] invites you to use its patient portal for [Patient First Name], as their parent, guardian "
        "or caregiver."
    ),
    "button": gettext_noop("Set up access"),
    "copy": gettext_noop("If the button does not work, copy this address into your browser:"),
    "safe": gettext_noop(
        "To keep [Patient First Name]'s information safe we will ask for their last name and date of birth. Then you "
        "create your own login, or sign in to the one you have. The link works once and expires on "
        "<strong>[Expiry Date]</strong>."
    ),
    "questions": gettext_noop(
        "Did not expect this email? You can ignore it. Questions? Contact [Practice Name]: [Practice Contact]."
    ),
}
TEXT_BODY = gettext_noop("[Practice Name]: set up portal access for [Patient First Name]: [Registration Link] Reply STOP to opt out.")
_PATIENT_FIRST_NAME = "[Patient First Name]"


class _Wording:
    """The representative's wording in the active language, shaped like a practice's template."""

    def __init__(self, patient_first_name: str):
        # Brackets in a name are written as entities, so a name can never look like a snippet.
        name = invitation_email.patient_name_html(patient_first_name or gettext("the patient"))
        body = email_html.EMAIL_LAYOUT.format(**{key: gettext(sentence) for key, sentence in _SENTENCES.items()})
        self.language = translation.get_language()
        self.subject = gettext(SUBJECT)
        self.html_body = body.replace(_PATIENT_FIRST_NAME, name)


def render(invitation, link: str) -> invitation_email.RenderedEmail:
    representative = invitation.access.representative
    return invitation_email.render(
        practice=invitation.practice, first_name=representative.first_name, link=link,
        expires_at=invitation.expires_at, template=_Wording(invitation.patient.first_name),
    )


def build_message(invitation, token: str):
    """The email for one claimed invitation to a representative, in the invitation's language
    (the patient's: a family's language), metadata only the opaque id."""
    with languages.speaking(invitation.language):
        rendered = render(invitation, invitation_email.registration_url(token))
    return invitation_email._message(
        rendered, from_email=invitation_email.from_address(invitation.practice), to=[invitation.email],
        reply_to=invitation.practice.contact_email, public_id=invitation.public_id,
    )


def text_body(invitation) -> str:
    """The invitation text's wording with the patient's first name in (plain, never a snippet)."""
    return _text_body(invitation.patient.first_name)


def _text_body(patient_first_name: str) -> str:
    name = "".join(c for c in (patient_first_name or "") if c not in "[]").strip() or gettext("the patient")
    return gettext(TEXT_BODY).replace(_PATIENT_FIRST_NAME, name)


def compose_text(invitation, token: str) -> str:
    return invitation_text.compose(invitation.practice, text_body(invitation), token)


def text_for_chunk(practice, *, patient_first_name: str, language: str, token: str) -> str:
    """A bulk run's text to a representative: `compose_text` from a chunk's row, in the patient's language."""
    with languages.speaking(language):
        return invitation_text.compose(practice, _text_body(patient_first_name), token)


class ChunkComposer(invitation_email.ChunkComposer):
    """A bulk run's chunk's emails, a patient's in the practice's wording and a representative's in
    theirs: each rendered once per expiry date and language, the representative's with the
    patient's first name filled in per recipient (`PreparedEmail.PATIENT_FIRST_NAME`), or merged
    per recipient by a provider that sends batches, like the first name and the link."""

    def __init__(self, **options):
        super().__init__(**options)
        self._nameless_patient: dict[tuple, str] = {}

    @staticmethod
    def group(recipient: invitation_email.Recipient) -> tuple:
        return recipient.expires_at, recipient.language, recipient.for_representative

    def _for(self, recipient: invitation_email.Recipient) -> invitation_email.PreparedEmail:
        key = self.group(recipient)
        if recipient.for_representative and key not in self._prepared:
            with languages.speaking(recipient.language):
                self._prepared[key] = invitation_email.PreparedEmail(
                    practice=self.practice, expires_at=recipient.expires_at,
                    template=_Wording(invitation_email.PreparedEmail.PATIENT_FIRST_NAME),
                )
                self._nameless_patient[key] = gettext("the patient")
        return super()._for(recipient)

    def _named(self, recipient: invitation_email.Recipient) -> invitation_email.Recipient:
        """The recipient with the patient's first name their email shows ("the patient" when the chart has none)."""
        if not recipient.for_representative or recipient.patient_first_name:
            return recipient
        self._for(recipient)
        return dataclasses.replace(recipient, patient_first_name=self._nameless_patient[self.group(recipient)])

    def message(self, item):
        recipient = self._named(item.payload)
        if not recipient.for_representative:
            return super().message(item)
        return self._for(recipient).message(
            to=recipient.to, first_name=recipient.first_name, token=recipient.token, public_id=recipient.public_id,
            patient_first_name=recipient.patient_first_name,
        )

    def batch(self, items, merge):
        recipients = [self._named(item.payload) for item in items]
        return self._for(recipients[0]).batch_message(recipients, merge)


# -- notices (plain text emails) ----------------------------------------------------------------------

NOTICE_SUBJECT = gettext_noop("About your patient portal at %(practice)s")


def ended_for_representative(*, representative, patient, practice, came_of_age: bool) -> tuple[str, str]:
    """(subject, body) telling a representative their access ended."""
    if came_of_age:
        why = gettext("%(patient)s has come of age, so the access you had to their patient portal at %(practice)s has ended.")
    else:
        why = gettext("The access you had to %(patient)s's patient portal at %(practice)s has ended.")
    body = "\n\n".join([
        gettext("Hello %(name)s,") % {"name": representative.first_name},
        why % {"patient": patient.first_name or gettext("the patient"), "practice": practice.name},
        gettext("Questions? Contact %(practice)s: %(contact)s.") % {
            "practice": practice.name, "contact": invitation_email.contact_line(practice),
        },
    ])
    return gettext(NOTICE_SUBJECT) % {"practice": practice.name}, body + "\n"


def ended_for_patient(*, patient, practice, invited: bool) -> tuple[str, str]:
    """(subject, body) telling a patient who came of age that their parents' access ended."""
    lines = [
        gettext("Hello %(name)s,") % {"name": patient.first_name or gettext("there")},
        gettext(
            "Now that you have come of age, your parents' or guardians' access to your patient portal at %(practice)s "
            "has ended. Your portal is yours."
        ) % {"practice": practice.name},
    ]
    if invited:
        lines.append(gettext("An invitation to set up your own portal account is on its way in a separate message."))
    lines.append(gettext("Questions? Contact %(practice)s: %(contact)s.") % {
        "practice": practice.name, "contact": invitation_email.contact_line(practice),
    })
    return gettext(NOTICE_SUBJECT) % {"practice": practice.name}, "\n\n".join(lines) + "\n"


def ends_soon_for_patient(*, patient, representative, practice, ends_at: datetime.datetime) -> tuple[str, str]:
    """(subject, body) reminding a patient that a caregiver's access ends soon."""
    lines = [
        gettext("Hello %(name)s,") % {"name": patient.first_name or gettext("there")},
        gettext(
            "The access %(representative)s has to your patient portal at %(practice)s ends on %(date)s. To keep it, "
            "sign in to your portal and give it a new end date; to end it now, revoke it there."
        ) % {
            "representative": representative.full_name, "practice": practice.name,
            "date": invitation_email.format_expiry(ends_at, practice.time_zone),
        },
        gettext("Questions? Contact %(practice)s: %(contact)s.") % {
            "practice": practice.name, "contact": invitation_email.contact_line(practice),
        },
    ]
    return gettext(NOTICE_SUBJECT) % {"practice": practice.name}, "\n\n".join(lines) + "\n"
