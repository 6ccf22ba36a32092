"""Invitation workflows that touch several models or send email.

Views, admin actions and tasks call these; none of them writes an invitation's status itself
(the transition methods on `Invitation` and its queryset do). Bulk runs live in `invitations.bulk.runs`.
"""

import datetime
import logging
import secrets
import unicodedata
from dataclasses import dataclass, field
from typing import Optional

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from core.queue import enqueue_on_commit
from core.sending import engine
from core.sending.transports import Item
from core.sending.transports import email as email_transport
from patients import audit, tenancy
from patients.audit import AuditAction
from patients.models import EmailOptOut, OptOutReason, Patient, Practice, normalise_email

from invitations import eligibility
from invitations.wording import invitation_email
from invitations.wording import representatives as representative_wording
from invitations.eligibility import Reason
from invitations.models import (
    SEND_GIVE_UP_AFTER, Channel, EventKind, Invitation, InvitationTemplate, RevokeReason, Source, Status, TextStatus, email_unsent,
)
from invitations.vocabulary import SendBy, created_detail

logger = logging.getLogger(__name__)
User = get_user_model()


# -- creating invitations ------------------------------------------------------------------


@dataclass
class InviteOutcome:
    patient: Patient
    invitation: Optional[Invitation] = None
    reasons: list[Reason] = field(default_factory=list)
    revoked: int = 0

    @property
    def created(self) -> bool:
        return self.invitation is not None


def invite(
    patient: Patient,
    *,
    now: datetime.datetime,
    source: str = Source.MANUAL,
    actor=None,
    resend: bool = False,
    send_by: str = SendBy.AUTO,
) -> InviteOutcome:
    """Check eligibility and, if the patient may be invited, create the invitation, to go by the
    channels `send_by` asks for (`eligibility.Plan`: by default email, or a text when email
    cannot be used).

    With `resend`, the patient's open link is revoked (reason "resent") and a new one made.
    The email and the text are enqueued only once the transaction commits, so the worker always
    finds the row.
    """
    with transaction.atomic():
        # Serialises concurrent invites of one patient (PostgreSQL; SQLite serialises writers).
        # Only the patient row is locked, not the practice it joins.
        patient = Patient.objects.select_for_update(of=("self",)).select_related("practice").get(pk=patient.pk)
        Invitation.objects.filter(patient=patient).expire_due(now)
        decision = eligibility.channels_for(patient, now=now, for_resend=resend, plan=eligibility.PLAN_OF_SEND_BY[send_by])
        if decision.reasons:
            return InviteOutcome(patient=patient, reasons=decision.reasons)
        revoked = 0
        if resend:
            for old in Invitation.objects.open().own().filter(patient=patient):
                revoked += old.revoke(now, reason=RevokeReason.RESENT, actor=actor)
        try:
            with transaction.atomic():
                invitation = Invitation.objects.create_latest(
                    practice_id=patient.practice_id,
                    patient=patient,
                    email=normalise_email(patient.email) if decision.by_email else "",
                    by_email=decision.by_email,
                    by_text=decision.by_text,
                    text_to=patient.mobile_phone if decision.by_text else "",
                    text_status=TextStatus.PENDING if decision.by_text else TextStatus.NONE,
                    source=source,
                    created_by=actor if actor is not None and actor.pk else None,
                    created_at=now,
                    expires_at=patient.practice.link_expires_at(now),
                )
        except IntegrityError:
            # Another request created the open invitation a moment ago.
            return InviteOutcome(patient=patient, reasons=[eligibility.RULES_BY_CODE["open_invitation"].reason])
        invitation.record(EventKind.CREATED, now=now, actor=actor, detail=created_detail(source, decision.channels))
        if decision.by_email:
            enqueue_on_commit("invitations.send_invitation", invitation.pk)
        if decision.by_text:
            enqueue_on_commit("invitations.send_invitation_text", invitation.pk)
    return InviteOutcome(patient=patient, invitation=invitation, revoked=revoked)


# -- the same for a staff selection, checked against each practice's role and audited -----------

#: What the audit trail says for one patient, per action.
AUDIT_SUMMARIES = {
    AuditAction.INVITE: "Portal invitation sent",
    AuditAction.RESEND: "Portal invitation resent (new link)",
    AuditAction.REVOKE: "Portal invitation revoked",
}


@dataclass
class ManyOutcome:
    done: list[Patient] = field(default_factory=list)
    #: (patient, why not: the rules' reasons or the staff member's role)
    skipped: list[tuple[Patient, str]] = field(default_factory=list)


def invite_many(
    patients: list[Patient], *, now: datetime.datetime, actor=None, resend: bool = False, source: Optional[str] = None,
    send_by: str = SendBy.AUTO,
) -> ManyOutcome:
    """Invite (or, with `resend`, send a new link to) each patient the rules allow and the actor's
    role at that patient's practice permits; audited per patient. The workflow behind the patient
    list's actions, the page buttons and the new-patient checkbox, from the admin or the shell."""
    result = ManyOutcome()
    source = source or (Source.RESEND if resend else Source.MANUAL)
    for patient in patients:
        if actor is not None and not tenancy.can(actor, "invitations.add_invitation", patient.practice_id):
            result.skipped.append((patient, "your role at this practice does not allow invitations."))
            continue
        outcome = invite(patient, now=now, actor=actor, resend=resend, source=source, send_by=send_by)
        if outcome.created:
            result.done.append(patient)
        else:
            result.skipped.append((patient, eligibility.reasons_text(outcome.reasons)))
    _audit(AuditAction.RESEND if resend else AuditAction.INVITE, result.done, actor=actor)
    return result


def revoke_many(patients: list[Patient], *, now: datetime.datetime, actor=None) -> ManyOutcome:
    """Revoke each patient's open links (staff's decision), where the actor's role allows; audited."""
    result = ManyOutcome()
    for patient in patients:
        if actor is not None and not tenancy.can(actor, "invitations.change_invitation", patient.practice_id):
            result.skipped.append((patient, "your role at this practice does not allow revoking."))
            continue
        if revoke_open(patient, now=now, reason=RevokeReason.STAFF, actor=actor):
            result.done.append(patient)
        else:
            result.skipped.append((patient, "no pending or sent invitation."))
    _audit(AuditAction.REVOKE, result.done, actor=actor)
    return result


def _audit(action: str, patients: list[Patient], *, actor) -> None:
    if patients:
        audit.record_many(actor=actor, action=action, rows=[(p.practice_id, p.pk, AUDIT_SUMMARIES[action]) for p in patients])


def revoke_open(patient: Patient, *, now: datetime.datetime, reason: str, actor=None) -> int:
    """Revoke the patient's open invitations; returns how many."""
    return sum(
        invitation.revoke(now, reason=reason, actor=actor)
        for invitation in Invitation.objects.open().own().filter(patient_id=patient.pk)
    )


def revoke_for_contact_change(patient: Patient, *, now: datetime.datetime) -> int:
    """Open links that went to an address or a mobile number the patient no longer has are
    revoked for good."""
    open_links = Invitation.objects.open().own().filter(patient_id=patient.pk)
    old_address = open_links.filter(by_email=True).exclude(email=normalise_email(patient.email))
    revoked = sum(invitation.revoke(now, reason=RevokeReason.EMAIL_CHANGED) for invitation in old_address)
    old_number = open_links.filter(by_text=True).exclude(text_to=patient.mobile_phone or "")
    return revoked + sum(invitation.revoke(now, reason=RevokeReason.MOBILE_CHANGED) for invitation in old_number)


def revoke_for_opt_out(*, practice_id: int, email: str, now: datetime.datetime, actor=None) -> int:
    stale = Invitation.objects.open().filter(practice_id=practice_id, by_email=True, email=normalise_email(email))
    return sum(invitation.revoke(now, reason=RevokeReason.OPTED_OUT, actor=actor) for invitation in stale)


def revoke_for_text_opt_out(*, practice_id: int, phone: str, now: datetime.datetime, actor=None) -> int:
    """A number that replied STOP: open links that went only by text to it stop working (one that
    also went by email still reaches the patient that way, its text not sent if still pending)."""
    stale = Invitation.objects.open().filter(practice_id=practice_id, by_text=True, by_email=False, text_to=phone)
    revoked = sum(invitation.revoke(now, reason=RevokeReason.TEXT_OPTED_OUT, actor=actor) for invitation in stale)
    # The texts of invitations that also go by email and have not gone yet are not sent now.
    Invitation.objects.filter(practice_id=practice_id, text_to=phone).fail_blocked_texts(now)
    return revoked


def opt_out(*, practice: Practice, email: str, now: datetime.datetime, reason: str = OptOutReason.PATIENT_REQUEST) -> EmailOptOut:
    """Stop all of the practice's emails to `email` (the opt-out signal revokes open links). The
    patient's own doing (their email preferences, the email service's unsubscribe or complaint), so
    the audit trail names no staff member."""
    entry, created = EmailOptOut.objects.get_or_create(
        practice=practice, email=normalise_email(email), defaults={"reason": reason, "created_at": now}
    )
    if created:
        audit.record(
            practice_id=practice.pk, actor=None, action=AuditAction.OPT_OUT_ADDED, now=now,
            summary=f"Added {entry.email} ({entry.get_reason_display()})", details={"channel": "email", "by": "patient"},
        )
    return entry


def opt_back_in(entry: EmailOptOut, *, now: datetime.datetime) -> None:
    """The patient lifts their own opt-out (their email preferences page); audited."""
    entry.delete()
    audit.record(
        practice_id=entry.practice_id, actor=None, action=AuditAction.OPT_OUT_REMOVED, now=now,
        summary=f"Removed {entry.email} (the patient asked for emails again)", details={"channel": "email", "by": "patient"},
    )


# -- the practice's wording of the invitation ----------------------------------------------------


def save_template(template: InvitationTemplate, *, actor, changed: list[str], logo=None, remove_logo: bool = False) -> list[str]:
    """Save the template (the model sanitises the email and puts the text on one line) and the
    practice's logo; one audit entry names what changed (`changed`: the labels of the changed
    fields, e.g. "subject", "invitation text"; plus the logo here). Returns them."""
    template.updated_by = actor
    template.save()
    practice = template.practice
    changed = list(changed)
    if logo:
        practice.logo.save(logo.name, logo, save=True)
        changed.append("logo")
    elif remove_logo and practice.logo:
        practice.logo.delete(save=True)
        changed.append("logo (removed)")
    if changed:
        audit.record(
            practice_id=practice.pk, actor=actor, action=AuditAction.TEMPLATE_EDIT,
            summary=f"Changed the invitation template's {', '.join(changed)}",
        )
    return changed


# -- sending --------------------------------------------------------------------------------


class TransientSendError(Exception):
    """The email service may accept the message if asked again later (`retry_after` seconds, if
    it said)."""

    def __init__(self, detail: str, *, retry_after: Optional[float] = None):
        super().__init__(detail)
        self.retry_after = retry_after


def build_message(invitation: Invitation, token: str):
    """The email of one claimed invitation: the patient's own, or one to a representative."""
    if invitation.access_id is not None:
        return representative_wording.build_message(invitation, token)
    return invitation_email.build_message(invitation, token)


def deliver(invitation_id: int, *, now: datetime.datetime) -> str:
    """Send one invitation's email at most once. Returns what happened (for logs and tests).

    Raises TransientSendError when the email service should be asked again later.
    """
    invitation = Invitation.objects.select_related("practice", "patient").filter(pk=invitation_id).first()
    if invitation is None:
        return "missing"
    if invitation.is_open and invitation.is_expired(now):
        invitation.expire(now)
        return "expired"
    token = invitation.claim_for_sending(now)
    if token is None:
        return "not-claimed"  # sent, revoked, or another worker has it
    message = build_message(invitation, token)
    outcome = engine.send_one(Item(key=invitation.pk, to=invitation.email, payload=message), via=email_transport.for_one())
    if outcome.sent:
        invitation.mark_sent(timezone.now(), message_id=outcome.message_id)
        return "sent"
    error = outcome.error
    if error.is_refused:
        invitation.fail(now, reason=error.detail)
        logger.warning("invitation %s failed permanently: %s", invitation.public_id, error.detail.split(":")[0])
        return "failed"
    invitation.release_claim(now, detail=error.detail)
    raise TransientSendError(error.detail, retry_after=error.retry_after)


def give_up_sending(invitation_id: int, *, now: datetime.datetime, reason: str) -> None:
    invitation = Invitation.objects.filter(pk=invitation_id).first()
    if invitation is not None:
        invitation.fail(now, reason=f"Gave up after repeated errors: {reason}"[:300])


# -- delivery reports from the email service (anymail tracking webhooks) ------------------------

HARD_FAILURES = {"bounced", "rejected", "failed"}


def find_for_tracking(*, metadata: Optional[dict], message_id: Optional[str], recipient: Optional[str] = None) -> Optional[Invitation]:
    public_id = (metadata or {}).get("invitation")
    queryset = Invitation.objects.select_related("patient")
    if public_id:
        try:
            return queryset.filter(public_id=public_id).first()
        except (ValueError, ValidationError):
            return None
    if message_id:
        # A batch call (Mailgun) gives all its recipients one message id: the recipient tells
        # them apart, and an id that still names several invitations names none.
        matches = queryset.filter(provider_message_id=str(message_id))
        if recipient:
            matches = matches.filter(email=normalise_email(recipient))
        found = list(matches[:2])
        return found[0] if len(found) == 1 else None
    return None


def record_tracking_event(
    *,
    event_type: str,
    metadata: Optional[dict],
    message_id: Optional[str],
    recipient: Optional[str] = None,
    description: str = "",
    now: datetime.datetime,
) -> Optional[str]:
    """Apply one delivery report to its invitation. Reports for other emails are ignored.

    A hard bounce fails the invitation and marks the address bounced on the chart (eligibility
    then blocks it until the address changes); a spam complaint or unsubscribe puts the address
    on the practice's opt-out list.
    """
    invitation = find_for_tracking(metadata=metadata, message_id=message_id, recipient=recipient)
    if invitation is None:
        return None
    return apply_tracking_event(invitation, event_type=event_type, description=description, now=now)


def apply_tracking_event(invitation: Invitation, *, event_type: str, description: str = "", now: datetime.datetime) -> str:
    """Apply one delivery report to a known invitation; returns what it did ("ignored" if nothing)."""
    detail = " ".join((description or "").split())[:200]
    if event_type == "delivered":
        invitation.record(EventKind.DELIVERED, now=now)
    elif event_type in HARD_FAILURES:
        invitation.record(EventKind.BOUNCED, now=now, detail=detail)
        invitation.fail(now, reason=f"The email service reported: {event_type}" + (f" ({detail})" if detail else ""))
        # The address is dead for everyone at the practice who uses it (families share addresses).
        Patient.objects.filter(practice_id=invitation.practice_id, email=invitation.email).update(
            bounced_email=invitation.email
        )
    elif event_type in ("complained", "unsubscribed"):
        if event_type == "complained":
            invitation.record(EventKind.COMPLAINED, now=now)
        opt_out(
            practice=invitation.practice,
            email=invitation.email,
            now=now,
            reason=OptOutReason.SPAM_COMPLAINT if event_type == "complained" else OptOutReason.PATIENT_REQUEST,
        )
    else:
        return "ignored"
    return event_type


# -- registration ---------------------------------------------------------------------------


#: What a phone keyboard types for the apostrophes and hyphens in names (O’Brien, Smith‐Jones).
_TYPED_PUNCTUATION = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "\u2010": "-", "\u2011": "-", "\u2013": "-", "\u2014": "-"})


def normalise_name(name: str) -> str:
    """Case, accents, a phone's curly apostrophes and dashes, and surrounding or repeated spaces do
    not matter when comparing names."""
    decomposed = unicodedata.normalize("NFKD", (name or "").translate(_TYPED_PUNCTUATION))
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(stripped.casefold().split())


def identity_matches(patient: Patient, *, last_name: str, date_of_birth: Optional[datetime.date]) -> bool:
    expected = normalise_name(patient.last_name)
    given = normalise_name(last_name)
    # Compare both parts every time, so a wrong last name and a wrong date take the same path.
    name_ok = bool(expected) and secrets.compare_digest(expected.encode(), given.encode())
    date_ok = patient.date_of_birth is not None and patient.date_of_birth == date_of_birth
    return name_ok and date_ok


class RegistrationRefused(Exception):
    """The link cannot be used any more (used, expired, revoked) or the patient already registered."""


@dataclass
class RegistrationAttempt:
    #: "registered", "mismatch" (wrong last name or date of birth, counted), "voided" (that was the
    #: last allowed wrong answer, or the link was already void), "used", "expired",
    #: "username_taken" (only ever said once the identity matched).
    outcome: str
    user: Optional[object] = None


def attempt_registration(
    invitation_id: int, *, last_name: str, date_of_birth, username: str, password: str, now: datetime.datetime,
    via: str = Channel.EMAIL,
) -> RegistrationAttempt:
    """One registration attempt on one link, serialised with every other attempt on it.

    The invitation row is locked for the whole attempt: the link's state and its count of wrong
    answers are read under the lock, a wrong answer is counted in the same transaction, so however
    many attempts arrive at once at most MAX_FAILED_ATTEMPTS wrong answers are ever evaluated, and
    an attempt after the last one meets a void link. Whether a username is free is told only after
    the last name and date of birth matched: a link holder learns nothing about other accounts.
    """
    with transaction.atomic():
        invitation = (
            Invitation.objects.select_for_update(of=("self",)).select_related("patient", "practice")
            .filter(pk=invitation_id, access__isnull=True).first()
        )
        if invitation is None:
            return RegistrationAttempt("voided")
        state = link_state(invitation, now)
        if state != "usable":
            return RegistrationAttempt(state)
        if not identity_matches(invitation.patient, last_name=last_name, date_of_birth=date_of_birth):
            voided = invitation.record_failed_attempt(now)
            return RegistrationAttempt("voided" if voided else "mismatch")
        if User.objects.filter(username__iexact=username).exists():
            return RegistrationAttempt("username_taken")
        try:
            user = register(invitation, username=username, password=password, now=now, via=via)  # its own savepoint
        except IntegrityError:  # the same username, registered a moment ago
            return RegistrationAttempt("username_taken")
        except RegistrationRefused:
            return RegistrationAttempt("used")
    return RegistrationAttempt("registered", user)


def link_state(invitation: Invitation, now: datetime.datetime) -> str:
    """What a registration link is now: "usable", "used", "expired" or "voided"."""
    if invitation.status == Status.ACCEPTED or invitation.patient.has_portal_account:
        return "used"
    if invitation.is_expired(now):
        return "expired"
    if invitation.status in (Status.REVOKED, Status.FAILED):
        return "voided"
    return "usable"


def register(invitation: Invitation, *, username: str, password: str, now: datetime.datetime, via: str = Channel.EMAIL):
    """Create the patient's portal account from a verified link, in one transaction."""
    with transaction.atomic():
        patient = Patient.objects.select_for_update().get(pk=invitation.patient_id)
        if patient.portal_user_id is not None:
            raise RegistrationRefused("already registered")
        if not invitation.accept(now, via=via):
            raise RegistrationRefused("link no longer valid")
        user = User(
            username=username,
            email=patient.email,
            first_name=patient.first_name[:150],
            last_name=patient.last_name[:150],
            is_staff=False,
            is_superuser=False,
        )
        user.set_password(password)
        user.save()
        Patient.objects.filter(pk=patient.pk, portal_user__isnull=True).update(portal_user=user, registered_at=now)
        for other in Invitation.objects.open().own().filter(patient_id=patient.pk).exclude(pk=invitation.pk):
            other.revoke(now, reason=RevokeReason.REGISTERED)
    return user


# -- expiry sweep ---------------------------------------------------------------------------


#: A single invitation never attempted this long after it was created lost its task (the broker
#: was down, or the message was lost); the sweep enqueues it again.
UNSENT_GRACE = datetime.timedelta(minutes=2)
#: Retries after a temporary email-service error run in the task's own retry chain (about 30
#: minutes in all); one still pending this long after creation lost that chain and is given up.
RETRY_GIVE_UP = SEND_GIVE_UP_AFTER


def requeue_unsent(*, now: datetime.datetime, limit: int = 1000) -> int:
    """Recover single sends that lost their task, without ever starting a second retry chain.

    * never attempted (the task was lost before it ran, e.g. the broker was down): enqueued again;
      the send claim makes an extra delivery harmless;
    * attempted and released for a retry, and still pending hours later (the retry chain was
      lost): failed, so staff see it and can resend. Retries themselves belong to the task's
      retry chain alone, which stops at its limit.
    Bulk runs' invitations belong to their chunks (see invitations.bulk.runs).
    """
    pending = Invitation.objects.filter(email_unsent(), sending_started_at__isnull=True)
    for invitation_id in pending.filter(send_attempts__gt=0, created_at__lte=now - RETRY_GIVE_UP).values_list("pk", flat=True)[:limit]:
        give_up_sending(invitation_id, now=now, reason="the email service could not be reached for hours.")
    ids = list(
        pending.filter(send_attempts=0, created_at__lte=now - UNSENT_GRACE, expires_at__gt=now)
        .exclude(source__in=[Source.BULK, Source.MONTHLY, Source.BULK_RESEND])
        .order_by("created_at")
        .values_list("pk", flat=True)[:limit]
    )
    for invitation_id in ids:
        enqueue_on_commit("invitations.send_invitation", invitation_id)
    return len(ids)


def expire_due(*, now: datetime.datetime) -> int:
    return Invitation.objects.all().expire_due(now)
