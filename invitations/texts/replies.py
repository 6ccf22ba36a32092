"""Patients' replies to invitation texts: STOP (and the carriers' other opt-out words) puts the
number on the opt-out list of every practice that texts it, at once; START takes it off; HELP
answers with the practice's name and phone number. Nothing of a reply's wording is stored or logged.
"""

import datetime
import logging
from typing import Mapping, Optional

from django.db.models import Max

from core.sending.sms_webhooks import reply_keyword
from patients.models import Patient, Practice, SmsOptOut, SmsOptOutReason

from invitations.models import Invitation
from invitations.vocabulary import last_digits
from invitations.wording import invitation_text

logger = logging.getLogger(__name__)


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


def help_text(practice: Optional[Practice]) -> str:
    if practice is None:
        return "Patient portal invitations. Reply STOP to opt out."
    name = invitation_text.render("[Practice Name]", practice=practice, link="")
    phone = invitation_text.render("[Practice Phone]", practice=practice, link="")
    reach = f" Questions? Call {phone}." if phone else ""
    return f"{name}: patient portal invitations.{reach} Reply STOP to opt out."[:300]


def handle_reply(fields: Mapping[str, str], *, now: datetime.datetime) -> Optional[str]:
    """Act on a patient's reply (module docstring); the text to answer with, or None."""
    phone = (fields.get("From") or "").strip()
    keyword = reply_keyword(fields)
    if keyword is None or not phone:
        return None
    practices = _practices_texting(phone)
    if keyword == "stop":
        for practice in practices:
            SmsOptOut.objects.get_or_create(
                practice=practice, phone=phone, defaults={"reason": SmsOptOutReason.STOP_REPLY, "created_at": now}
            )
        logger.info("number %s replied STOP: on the opt-out list of %d practices", last_digits(phone), len(practices))
        return None  # Twilio confirms opt-outs itself
    if keyword == "start":
        removed, _ = SmsOptOut.objects.filter(practice__in=practices, phone=phone).delete()
        logger.info("number %s replied START: off %d opt-out lists", last_digits(phone), removed)
        return None
    return help_text(practices[0] if practices else None)
