"""Patients' replies to invitation texts, acted on at once and only for the practices that texted the
number (sent it an invitation text): a reply answers them, not a practice that merely has the
number on a chart.

- STOP (and the carriers' other opt-out words) puts the number on the text opt-out list of each of
  them, which covers every chart of theirs with that number.
- START takes it off those lists where a STOP or the text service put it; never an entry staff
  added (a patient who asked the front desk in person).
- HELP answers with the most recent sender's name and phone number; from a number no practice
  texted, a general answer that names no practice and confirms nothing.
Each list change is in the practice's audit trail (no actor: the patient). Nothing of a reply's
wording is stored or logged.
"""

import datetime
import logging
from typing import Mapping, Optional

import unicodedata

from django.db.models import Max
from django.utils.translation import gettext

from core import languages

from core.sending.text_webhooks import reply_keyword
from patients import audit
from patients.audit import AuditAction
from patients.models import Practice, SmsOptOut, SmsOptOutReason

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


#: Why a number is on a list that START lifts: the patient's own STOP, or the text service's report
#: of it. Staff's entries stay.
LIFTED_BY_START = (SmsOptOutReason.STOP_REPLY, SmsOptOutReason.PROVIDER)


def _language_of(phone: str) -> str:
    """The language of the latest invitation text to the number (a chart's language would tell that
    some practice holds a number none texted)."""
    return (
        Invitation.objects.filter(text_to=phone, by_text=True).order_by("-created_at").values_list("language", flat=True).first()
        or languages.DEFAULT_LANGUAGE
    )


def _practices_texting(phone: str) -> list[Practice]:
    """The practices that texted this number (an invitation text to it), the most recent sender
    first. Each practice once, however many invitations it sent the number (a cut-off on
    invitations could leave out a practice that texted it long ago)."""
    ids = list(
        Invitation.objects.filter(text_to=phone, by_text=True).values("practice_id")
        .annotate(last=Max("created_at")).order_by("-last").values_list("practice_id", flat=True)
    )
    practices = {practice.pk: practice for practice in Practice.objects.filter(pk__in=ids)}
    return [practices[pk] for pk in ids if pk in practices]


def _stop(practices: list[Practice], phone: str, now: datetime.datetime) -> int:
    added = 0
    for practice in practices:
        _entry, created = SmsOptOut.objects.get_or_create(
            practice=practice, phone=phone, defaults={"reason": SmsOptOutReason.STOP_REPLY, "created_at": now}
        )
        if created:
            added += 1
            audit.record(
                practice_id=practice.pk, actor=None, action=AuditAction.OPT_OUT_ADDED, now=now,
                summary=f"{last_digits(phone)} replied STOP: added to the text opt-out list",
                details={"channel": "text", "by": "reply"},
            )
    return added


def _start(practices: list[Practice], phone: str, now: datetime.datetime) -> int:
    entries = list(SmsOptOut.objects.filter(practice__in=practices, phone=phone, reason__in=LIFTED_BY_START))
    for entry in entries:
        entry.delete()
        audit.record(
            practice_id=entry.practice_id, actor=None, action=AuditAction.OPT_OUT_REMOVED, now=now,
            summary=f"{last_digits(phone)} replied START: removed from the text opt-out list",
            details={"channel": "text", "by": "reply"},
        )
    return len(entries)


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
        added = _stop(practices, phone, now)
        logger.info("number %s replied STOP: on the opt-out list of %d practices (%d new)", last_digits(phone), len(practices), added)
        if spoken is not None:  # a word Twilio does not know: nobody else confirms it
            return stop_confirmation(practices, spoken)
        return None  # Twilio confirms opt-outs itself
    if keyword == "start":
        removed = _start(practices, phone, now)
        logger.info("number %s replied START: off %d opt-out lists", last_digits(phone), removed)
        return None
    return help_text(practices[0] if practices else None, spoken or _language_of(phone))
