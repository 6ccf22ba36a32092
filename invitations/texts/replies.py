"""Patients' replies to invitation texts: STOP (and the carriers' other opt-out words) puts the
number on the opt-out list of every practice that texts it, at once; START takes it off; HELP
answers with the practice's name and phone number. Nothing of a reply's wording is stored or logged.
"""

import datetime
import logging
from typing import Mapping, Optional

import unicodedata

from django.db.models import Max
from django.utils.translation import gettext

from core import languages

from core.sending.text_webhooks import reply_keyword
from patients.models import Patient, Practice, SmsOptOut, SmsOptOutReason

from invitations.models import Invitation
from invitations.vocabulary import last_digits
from invitations.wording import invitation_text

logger = logging.getLogger(__name__)

#: Reply words in the patients' other languages, read like Twilio's English defaults (the whole
#: reply, any case, accents and trailing punctuation ignored). Twilio and the US carriers honour only
#: English words by default (STOP, STOPALL, UNSUBSCRIBE, CANCEL, END, QUIT, REVOKE, OPTOUT; START,
#: YES, UNSTOP; HELP, INFO); a messaging service's Advanced Opt-Out can add these, and Twilio then
#: says so itself (OptOutType). Without it a Spanish word reaches only us: we act on it the same and
#: confirm it in the patient's language, since Twilio does not (README "Languages").
OTHER_LANGUAGE_WORDS = {
    "es": {
        "stop": frozenset({"PARAR", "ALTO", "DETENER", "CANCELAR", "BAJA", "DESUSCRIBIR"}),
        "start": frozenset({"INICIAR", "COMENZAR", "REANUDAR"}),
        "help": frozenset({"AYUDA", "INFORMACION"}),
    },
}


def _other_language_keyword(fields: Mapping[str, str]) -> tuple[Optional[str], Optional[str]]:
    """("stop" | "start" | "help", the language) for a reply that is one of OTHER_LANGUAGE_WORDS."""
    if (fields.get("OptOutType") or "").strip():
        return None, None  # Twilio recognised it (or chose not to): reply_keyword decided
    word = unicodedata.normalize("NFKD", (fields.get("Body") or "").strip().rstrip(".!").strip().upper())
    word = "".join(c for c in word if not unicodedata.combining(c))
    for language, kinds in OTHER_LANGUAGE_WORDS.items():
        for kind, words in kinds.items():
            if word in words:
                return kind, language
    return None, None


def _language_of(phone: str) -> str:
    """The language of the patient a number belongs to: its latest invitation text's, else the chart's."""
    return (
        Invitation.objects.filter(text_to=phone, by_text=True).order_by("-created_at").values_list("language", flat=True).first()
        or Patient.objects.filter(mobile_phone=phone).values_list("preferred_language", flat=True).first()
        or languages.DEFAULT_LANGUAGE
    )


def _practices_texting(phone: str) -> list[Practice]:
    """The practices that text this number (sent it an invitation, or have it on a chart), the
    most recent sender first. Each practice once, however many invitations it sent the number
    (a cut-off on invitations could leave out a practice that texted it long ago)."""
    invited = (
        Invitation.objects.filter(text_to=phone, by_text=True).values("practice_id")
        .annotate(last=Max("created_at")).order_by("-last").values_list("practice_id", flat=True)
    )
    charted = Patient.objects.filter(mobile_phone=phone).order_by().values_list("practice_id", flat=True).distinct()
    ids = list(dict.fromkeys([*invited, *charted]))
    practices = {practice.pk: practice for practice in Practice.objects.filter(pk__in=ids)}
    return [practices[pk] for pk in ids if pk in practices]


def help_text(practice: Optional[Practice], language: Optional[str] = None) -> str:
    """The answer to HELP, in the patient's language (each translation in GSM-7, one text)."""
    with languages.speaking(language):
        if practice is None:
            return gettext("Patient portal invitations. Reply STOP to opt out.")
        name = invitation_text.render("[Practice Name]", practice=practice, link="")
        phone = invitation_text.render("[Practice Phone]", practice=practice, link="")
        if phone:
            text = gettext("%(practice)s: patient portal invitations. Questions? Call %(phone)s. Reply STOP to opt out.")
        else:
            text = gettext("%(practice)s: patient portal invitations. Reply STOP to opt out.")
        return (text % {"practice": name, "phone": phone})[:300]


def stop_confirmation(practices: list[Practice], language: Optional[str]) -> str:
    """Our own confirmation of an opt-out word Twilio did not handle (another language's)."""
    with languages.speaking(language):
        if not practices:
            return gettext("You will get no more portal invitation texts. Reply START to get them again.")
        name = invitation_text.render("[Practice Name]", practice=practices[0], link="")
        return gettext("You will get no more texts from %(practice)s. Reply START to get them again.") % {"practice": name}


def handle_reply(fields: Mapping[str, str], *, now: datetime.datetime) -> Optional[str]:
    """Act on a patient's reply (module docstring); the text to answer with, or None."""
    phone = (fields.get("From") or "").strip()
    keyword, spoken = reply_keyword(fields), None
    if keyword is None:
        keyword, spoken = _other_language_keyword(fields)
    if keyword is None or not phone:
        return None
    practices = _practices_texting(phone)
    if keyword == "stop":
        for practice in practices:
            SmsOptOut.objects.get_or_create(
                practice=practice, phone=phone, defaults={"reason": SmsOptOutReason.STOP_REPLY, "created_at": now}
            )
        logger.info("number %s replied STOP: on the opt-out list of %d practices", last_digits(phone), len(practices))
        if spoken is not None:  # a word Twilio does not know: nobody else confirms it
            return stop_confirmation(practices, spoken)
        return None  # Twilio confirms opt-outs itself
    if keyword == "start":
        removed, _ = SmsOptOut.objects.filter(practice__in=practices, phone=phone).delete()
        logger.info("number %s replied START: off %d opt-out lists", last_digits(phone), removed)
        return None
    return help_text(practices[0] if practices else None, spoken or _language_of(phone))
