"""Invitations by text message: send one invitation's text at most once and learn from what Twilio
says about it (patients' replies are `invitations.texts.replies`).

The sending path is `core.sending.engine` with the text transport (the account's shared rate,
every error classified); the text's state changes are `invitations.models.text_transitions`; what the text says is `invitations.wording.invitation_text`.
Bulk runs send their texts chunk by chunk (`invitations.bulk.chunks`) through the same pieces.

* **At most once.** The text is claimed in the database (`claim_text`, a fresh link each time)
  before the call; a call whose answer never came (a read timeout) is refused as
  ``unknown_outcome``, never tried again; a worker that dies between Twilio taking the text and
  our mark leaves a claim that lapses, and the redelivered task would send a second text with a
  new link, the same narrow at-least-once window as an email. Twilio's own status callback
  records the SID and state even when our mark never came (`record_status`).
* **What Twilio says is learned once.** An invalid number or a landline marks the chart's mobile
  number undeliverable (eligibility then skips texts until the number changes); a recipient who
  opted out at Twilio (21610) goes on the practice's text opt-out list.
"""

import datetime
import logging
from urllib.parse import urlencode

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db.models import F, Q
from django.urls import reverse
from django.utils import timezone

from core import languages
from core.queue import enqueue_on_commit
from core.sending import engine, errors
from core.sending.errors import ErrorKind, SendError
from core.sending.transports import Item
from core.sending.transports import text as text_transport
from patients.models import Patient, SmsOptOut, SmsOptOutReason

from invitations.wording import invitation_text
from invitations.wording import representatives as representative_wording
from invitations.models import OPEN_STATUSES, Invitation, InvitationTemplate, Source, TextStatus
from invitations.services import RETRY_GIVE_UP, UNSENT_GRACE, TransientSendError
from invitations.models.text_transitions import TEXT_CLAIM_LEASE
from invitations.vocabulary import FROM_TWILIO

logger = logging.getLogger(__name__)

#: What Twilio said that makes a chart's mobile number undeliverable (until staff change it).
UNDELIVERABLE_CODES = {errors.INVALID_NUMBER, errors.NOT_MOBILE}
#: How long a single text's task waits for the account's next slot (as an email's does): a bulk
#: run's chunk keeps a slot reserved for each of its texts in flight, several seconds ahead at
#: one text a second, and a shorter wait would find no slot on any retry until the task gave up.
SINGLE_TEXT_MAX_WAIT = 30.0
#: Sources whose texts belong to a bulk run's chunks, not to the single-send task.
BULK_SOURCES = (Source.BULK, Source.MONTHLY, Source.BULK_RESEND)


def status_callback_url(invitation: Invitation) -> str:
    """Where Twilio posts the text's statuses: names the invitation, so a status that arrives
    before our own mark still finds it (the query string is part of what Twilio signs)."""
    if getattr(settings, "SMS_PROVIDER", "") != "twilio":
        return ""
    query = urlencode({"invitation": str(invitation.public_id)})
    return f"{settings.PORTAL_BASE_URL}{reverse('invitations:twilio_text_status')}?{query}"


# -- one invitation's text ----------------------------------------------------------------------


def deliver_text(invitation_id: int, *, now: datetime.datetime) -> str:
    """Send one invitation's text at most once. Returns what happened (for logs and tests).

    Raises TransientSendError when the text service should be asked again later.
    """
    invitation = Invitation.objects.select_related("practice").filter(pk=invitation_id).first()
    if invitation is None:
        return "missing"
    if not invitation.by_text:
        return "no-text"
    if invitation.is_open and invitation.is_expired(now):
        invitation.expire(now)
        return "expired"
    if Invitation.objects.filter(pk=invitation.pk).fail_blocked_texts(now):
        return "blocked"  # opted out, consent withdrawn or texts turned off since it was made
    token = Invitation.objects.claim_text(invitation.pk, now)
    if token is None:
        return "not-claimed"  # sent, failed, revoked, or another worker has it
    template = invitation.wording()
    with languages.speaking(template.language):  # the worker's own language is never the patient's
        if invitation.access_id is not None:  # to a representative: their own wording
            body = representative_wording.compose_text(invitation, token)
        else:
            body = invitation_text.compose(invitation.practice, template.text_body, token)
    text = Item(key=invitation.pk, to=invitation.text_to, payload=text_transport.Text(body, status_callback_url(invitation)))
    outcome = engine.send_one(text, via=text_transport.for_one(), max_wait=SINGLE_TEXT_MAX_WAIT)
    if outcome.sent:
        Invitation.objects.mark_texts_queued([(invitation.pk, outcome.message_id)], now=timezone.now())
        return "sent"
    error = outcome.error
    if error.is_refused:
        refuse([(invitation.pk, error)], now=now)
        logger.warning("invitation %s: text refused (%s)", invitation.public_id, error.code or error.kind.value)
        return "failed"
    detail = "" if error.kind is ErrorKind.THROTTLED else error.detail
    Invitation.objects.release_texts([(invitation.pk, detail)], now=now)
    raise TransientSendError(error.detail, retry_after=error.retry_after)


def give_up_text(invitation_id: int, *, now: datetime.datetime, reason: str) -> None:
    Invitation.objects.fail_texts([(invitation_id, f"Gave up after repeated errors: {reason}"[:300])], now=now)


def refuse(refused: list[tuple[int, SendError]], *, now: datetime.datetime) -> list[int]:
    """Twilio refused these texts: fail them (and their invitations where no channel is left)
    and learn what the refusal says about the number."""
    changed = set(Invitation.objects.fail_texts([(pk, error.detail) for pk, error in refused], now=now))
    learn([(pk, error) for pk, error in refused if pk in changed], now=now)
    return sorted(changed)


def learn(refused: list[tuple[int, SendError]], *, now: datetime.datetime) -> None:
    """A number Twilio calls invalid or a landline is marked undeliverable on the charts that
    still have it; a number that opted out at Twilio goes on the practice's opt-out list."""
    meaningful = {pk: error for pk, error in refused if error.code in UNDELIVERABLE_CODES | {errors.OPTED_OUT}}
    if not meaningful:
        return
    numbers = Invitation.objects.filter(pk__in=list(meaningful)).exclude(text_to="").values_list("pk", "practice_id", "text_to")
    undeliverable: dict[str, Q] = {}  # one UPDATE per reason, however many numbers share it
    for pk, practice_id, number in numbers:
        error = meaningful[pk]
        if error.code == errors.OPTED_OUT:
            # Rare (the number replied STOP to this sender before): saved one by one so the opt-out
            # signal revokes the number's other text-only links.
            SmsOptOut.objects.get_or_create(
                practice_id=practice_id, phone=number, defaults={"reason": SmsOptOutReason.PROVIDER, "created_at": now}
            )
        else:
            undeliverable[error.detail[:200]] = undeliverable.get(error.detail[:200], Q(pk__in=[])) | Q(
                practice_id=practice_id, mobile_phone=number
            )
    for reason, charts in undeliverable.items():
        Patient.objects.filter(charts).update(undeliverable_mobile=F("mobile_phone"), undeliverable_mobile_reason=reason)


# -- Twilio's status callbacks --------------------------------------------------------------------


def record_status(*, public_id: str, sid: str, status: str, error_code=None, now: datetime.datetime) -> str:
    """Apply one status callback. Returns what it did: the new state, "unchanged" (a repeat, a
    late or an earlier state), "ignored" (a state we do not track) or "unknown" (no such text)."""
    state = FROM_TWILIO.get((status or "").strip().lower())
    if state is None:
        return "ignored"
    texts = Invitation.objects.none()
    if public_id:
        try:
            texts = Invitation.objects.filter(public_id=public_id)
        except (ValueError, ValidationError):
            texts = Invitation.objects.none()
    elif sid:
        texts = Invitation.objects.filter(text_sid=sid)
    if not texts.filter(by_text=True).exists():
        return "unknown"
    error = errors.twilio_delivery_error(error_code) if state == TextStatus.UNDELIVERED else None
    changed = texts.record_text_status(state=state, error=error.detail if error else "", sid=sid or "", now=now)
    if not changed:
        return "unchanged"
    if error is not None and error.kind is ErrorKind.REFUSED:
        learn([(pk, error) for pk in changed], now=now)
    return state


# -- the sweep ------------------------------------------------------------------------------------


def requeue_unsent_texts(*, now: datetime.datetime, limit: int = 1000) -> int:
    """Single invitations' texts whose task was lost: enqueued again when never tried, or when the
    worker that held one died without its task coming back (the claim lapsed); failed with the
    reason when tried and still unsent hours later (their retry chain was lost)."""
    lapsed = Q(text_claimed_at__lte=now - TEXT_CLAIM_LEASE)
    waiting = Invitation.objects.filter(
        Q(text_claimed_at__isnull=True) | lapsed, by_text=True, text_status=TextStatus.PENDING, status__in=list(OPEN_STATUSES),
    ).exclude(source__in=BULK_SOURCES)
    stale = list(waiting.filter(text_attempts__gt=0, created_at__lte=now - RETRY_GIVE_UP).values_list("pk", flat=True)[:limit])
    for invitation_id in stale:
        give_up_text(invitation_id, now=now, reason="the text service could not be reached for hours.")
    lost = Q(text_attempts=0, created_at__lte=now - UNSENT_GRACE) | (lapsed & Q(created_at__gt=now - RETRY_GIVE_UP))
    ids = list(
        waiting.filter(lost, expires_at__gt=now).order_by("created_at").values_list("pk", flat=True)[:limit]
    )
    for invitation_id in ids:
        enqueue_on_commit("invitations.send_invitation_text", invitation_id)
    return len(ids)
