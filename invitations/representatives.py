"""Family and caregiver access, the workflows: granting a representative access to a patient (staff,
or an adult patient from their portal), inviting them with every guarantee of a patient's own
invitation (single-use hashed links that expire, resend and revoke, the shared provider rate,
delivery reports, eligibility with reasons), linking their own login when they register from the
link, and revoking or ending access on time, exactly once. Every grant, link, revocation and ending
is in the audit trail (who, whose, when; never health information).

The data is `patients.models.representatives`; the rules of a representative's invitation are
`invitations.eligibility.representatives`; the pages are the patient admin's (staff) and
`portal.pages.family` (the patient's side).
"""

import datetime
import logging
from dataclasses import dataclass, field
from typing import Optional

from django.contrib.auth import authenticate, get_user_model
from django.core.exceptions import ValidationError
from django.core.mail import EmailMessage
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef, Q

from core.queue import enqueue_on_commit
from core.sending import engine
from core.sending.transports import Item
from core.sending.transports import email as email_transport
from patients import audit
from patients.audit import AuditAction
from patients.models import AgeBand, Patient, Practice, birthday_cutoff, normalise_email
from patients.models.representatives import (
    LIVE_STATUSES, AccessLevel, AccessNotice, AccessStatus, EndReason, NoticeKind, Relationship, Representative,
    RepresentativeAccess, ends_soon,
)

from invitations import eligibility
from invitations.eligibility import Reason
from invitations.models import EventKind, Invitation, RevokeReason, Source, Status, TextStatus
from invitations.vocabulary import SendBy, created_detail
from invitations.wording import invitation_email
from invitations.wording import representatives as wording

logger = logging.getLogger(__name__)
User = get_user_model()

#: The patient is reminded this long before a caregiver's access reaches its end date.
REMINDER_BEFORE_END = datetime.timedelta(days=14)


# -- granting ----------------------------------------------------------------------------------------


def grant_errors(
    patient: Patient, *, relationship: str, level: str, full_access_reason: str = "", patient_consent: str = "",
    court_document: str = "", ends_at: Optional[datetime.datetime] = None, by_patient: bool = False,
    now: datetime.datetime,
) -> dict[str, str]:
    """What stops this grant under the practice's age bands, by form field ({} when it may be made)."""
    practice = patient.practice
    errors: dict[str, str] = {}
    if not practice.family_access_enabled:
        errors["relationship"] = "Family and caregiver access is turned off for this practice (practice settings)."
        return errors
    band = practice.age_band(patient.date_of_birth, practice.today(now))
    if not band:
        errors["relationship"] = "The patient's date of birth is missing: it decides who may act for them. Add it first."
        return errors
    if band == AgeBand.TEEN and level == AccessLevel.FULL and not full_access_reason.strip():
        errors["full_access_reason"] = (
            f"The patient is a teenager ({practice.own_account_age}–{practice.adult_age - 1}): representatives get "
            "limited access unless you record why full access is needed."
        )
    if band == AgeBand.ADULT and relationship != Relationship.COURT_GUARDIAN and not by_patient and not patient_consent.strip():
        errors["patient_consent"] = (
            "The patient is an adult: a representative needs the patient's consent. Record how they consented "
            "(or choose court-appointed guardian and note the order)."
        )
    if relationship == Relationship.COURT_GUARDIAN and not court_document.strip():
        errors["court_document"] = "Note the court order (name, number, date) that appoints the guardian."
    if relationship == Relationship.COURT_GUARDIAN and ends_at is not None:
        errors["ends_at"] = "A court-appointed guardian's access has no end date (revoke it when the order ends)."
    if ends_at is not None and ends_at <= now:
        errors["ends_at"] = "The end date must be in the future."
    return errors


def default_level(patient: Patient, now: datetime.datetime) -> str:
    """Full for a child's or an adult's representative, limited for a teenager's."""
    practice = patient.practice
    return AccessLevel.LIMITED if practice.age_band(patient.date_of_birth, practice.today(now)) == AgeBand.TEEN else AccessLevel.FULL


def grant(
    patient: Patient, representative: Representative, *, relationship: str, level: str, now: datetime.datetime,
    actor=None, full_access_reason: str = "", patient_consent: str = "", court_document: str = "",
    ends_at: Optional[datetime.datetime] = None, by_patient: bool = False,
) -> RepresentativeAccess:
    """Give `representative` access to `patient`'s portal (status invited: it is in force once they
    link their login). Raises ValidationError (by field) when the age bands do not allow it."""
    errors = grant_errors(
        patient, relationship=relationship, level=level, full_access_reason=full_access_reason,
        patient_consent=patient_consent, court_document=court_document, ends_at=ends_at, by_patient=by_patient, now=now,
    )
    if errors:
        raise ValidationError(errors)
    practice = patient.practice
    minor = practice.age_band(patient.date_of_birth, practice.today(now)) in (AgeBand.CHILD, AgeBand.TEEN)
    try:
        with transaction.atomic():
            access = RepresentativeAccess.objects.create(
                practice_id=patient.practice_id, patient=patient, representative=representative,
                relationship=relationship, level=level, full_access_reason=full_access_reason.strip(),
                patient_consent=patient_consent.strip(), court_document=court_document.strip(),
                granted_at=now, granted_by=actor if getattr(actor, "pk", None) else None, granted_by_patient=by_patient,
                # A parent's or caregiver's access to a minor ends at the age of majority; a
                # court-appointed guardian's only when revoked.
                ends_at_majority=minor and relationship != Relationship.COURT_GUARDIAN, ends_at=ends_at,
            )
    except IntegrityError as error:
        raise ValidationError({"representative": "This representative already has access to this patient."}) from error
    audit.record(
        practice_id=patient.practice_id, actor=actor, action=AuditAction.REPRESENTATIVE_GRANTED, patient_id=patient.pk,
        summary=f"Gave {representative} {access.get_level_display().lower()} as {access.get_relationship_display().lower()}"
        + (" (by the patient)" if by_patient else ""),
        details={"access": access.pk, "representative": representative.pk, "level": level, "relationship": relationship},
        now=now,
    )
    return access


# -- inviting a representative ---------------------------------------------------------------------


@dataclass
class InviteOutcome:
    access: RepresentativeAccess
    invitation: Optional[Invitation] = None
    reasons: list[Reason] = field(default_factory=list)

    @property
    def created(self) -> bool:
        return self.invitation is not None


def invite(
    access: RepresentativeAccess, *, now: datetime.datetime, actor=None, resend: bool = False, send_by: str = SendBy.AUTO,
    source: str = Source.MANUAL, audited: bool = True,
) -> InviteOutcome:
    """Invite the representative of `access` by the channels `send_by` asks for, if the rules allow;
    with `resend`, their open link is revoked first. Sent only once the transaction commits."""
    with transaction.atomic():
        # Serialises concurrent invites of one access (PostgreSQL; SQLite serialises writers).
        access = (
            RepresentativeAccess.objects.select_for_update(of=("self",))
            .select_related("representative", "patient", "practice").get(pk=access.pk)
        )
        Invitation.objects.filter(access=access).expire_due(now)
        decision = eligibility.representative_channels_for(
            access, now=now, for_resend=resend, plan=eligibility.PLAN_OF_SEND_BY[send_by],
        )
        if decision.reasons:
            return InviteOutcome(access=access, reasons=decision.reasons)
        if resend:
            for old in Invitation.objects.open().filter(access=access):
                old.revoke(now, reason=RevokeReason.RESENT, actor=actor)
        representative = access.representative
        try:
            with transaction.atomic():
                invitation = Invitation.objects.create_for_representative(
                    access=access,
                    email=normalise_email(representative.email) if decision.by_email else "",
                    by_email=decision.by_email,
                    by_text=decision.by_text,
                    text_to=representative.mobile_phone if decision.by_text else "",
                    text_status=TextStatus.PENDING if decision.by_text else TextStatus.NONE,
                    source=source,
                    created_by=actor if getattr(actor, "pk", None) else None,
                    created_at=now,
                    expires_at=access.practice.link_expires_at(now),
                )
        except IntegrityError:  # another request invited them a moment ago
            return InviteOutcome(access=access, reasons=[eligibility.REPRESENTATIVE_RULES_BY_CODE["representative_open_invitation"].reason])
        invitation.record(
            EventKind.CREATED, now=now, actor=actor,
            detail=f"To {representative}, {access.get_relationship_display().lower()}: " + created_detail(source, decision.channels),
        )
        if decision.by_email:
            enqueue_on_commit("invitations.send_invitation", invitation.pk)
        if decision.by_text:
            enqueue_on_commit("invitations.send_invitation_text", invitation.pk)
        if audited:
            audit.record(
                practice_id=access.practice_id, actor=actor, patient_id=access.patient_id,
                action=AuditAction.RESEND if resend else AuditAction.INVITE,
                summary=f"Portal invitation {'resent' if resend else 'sent'} to representative {representative}",
                details={"access": access.pk}, now=now,
            )
    return InviteOutcome(access=access, invitation=invitation)


# -- revoking and ending -------------------------------------------------------------------------------

_AUDIT_OF_REASON = {
    EndReason.STAFF: AuditAction.REPRESENTATIVE_REVOKED,
    EndReason.PATIENT: AuditAction.REPRESENTATIVE_REVOKED,
}


def _close_links(access_ids: list[int], now: datetime.datetime, actor=None) -> None:
    for invitation in Invitation.objects.open().filter(access_id__in=access_ids):
        invitation.revoke(now, reason=RevokeReason.ACCESS_ENDED, actor=actor)


def revoke(access: RepresentativeAccess, *, now: datetime.datetime, actor=None, by_patient: bool = False, note: str = "") -> bool:
    """End `access` now (staff, or the patient from their portal): its open links stop working, and
    so does an open session of the representative on their next request. False when it was not live."""
    reason = EndReason.PATIENT if by_patient else EndReason.STAFF
    with transaction.atomic():
        changed = RepresentativeAccess.objects.filter(pk=access.pk).end(reason=reason, now=now, actor=actor, note=note)
        if not changed:
            return False
        _close_links(changed, now, actor)
        access.refresh_from_db()
        audit.record(
            practice_id=access.practice_id, actor=actor, patient_id=access.patient_id,
            action=AuditAction.REPRESENTATIVE_REVOKED,
            summary=f"Revoked the access of {access.representative}" + (" (by the patient)" if by_patient else ""),
            details={"access": access.pk, "note_given": bool(note)}, now=now,
        )
    return True


def revoke_for_contact_change(representative: Representative, *, now: datetime.datetime) -> int:
    """A representative's address or number changed: their open links to the old ones stop working."""
    open_links = Invitation.objects.open().filter(access__representative=representative)
    old_address = open_links.filter(by_email=True).exclude(email=normalise_email(representative.email))
    revoked = sum(invitation.revoke(now, reason=RevokeReason.EMAIL_CHANGED) for invitation in old_address)
    old_number = open_links.filter(by_text=True).exclude(text_to=representative.mobile_phone or "")
    return revoked + sum(invitation.revoke(now, reason=RevokeReason.MOBILE_CHANGED) for invitation in old_number)


def end_due(*, now: datetime.datetime) -> int:
    """The daily (hourly-run) job: end parents' and guardians' access to patients who reached their
    practice's age of majority (on the practice's own date) and every access past its end date,
    exactly once each (a conditional UPDATE per access: a second run, or two at once, end nothing
    twice); tell both sides, and invite the new adult to their own account where eligible. Also
    reminds patients of caregiver access that ends soon. Returns how many accesses ended."""
    ended = 0
    for practice in Practice.objects.filter(family_access_enabled=True, representative_accesses__status__in=list(LIVE_STATUSES)).distinct():
        cutoff = birthday_cutoff(practice.today(now), practice.adult_age)
        came_of_age = RepresentativeAccess.objects.filter(
            practice=practice, ends_at_majority=True, patient__date_of_birth__lte=cutoff,
        )
        ended += _end(came_of_age, reason=EndReason.CAME_OF_AGE, now=now)
    ended += _end(RepresentativeAccess.objects.filter(ends_at__lte=now), reason=EndReason.END_DATE, now=now)
    remind_ending_soon(now=now)
    return ended


def _end(queryset, *, reason: str, now: datetime.datetime) -> int:
    ids = []
    for access_id in queryset.live().values_list("pk", flat=True):
        with transaction.atomic():
            changed = RepresentativeAccess.objects.filter(pk=access_id).end(reason=reason, now=now)
            if not changed:
                continue  # another run ended it a moment ago
            _close_links(changed, now)
            access = RepresentativeAccess.objects.select_related("representative", "patient").get(pk=access_id)
            audit.record(
                practice_id=access.practice_id, actor=None, patient_id=access.patient_id,
                action=AuditAction.REPRESENTATIVE_ENDED,
                summary=f"The access of {access.representative} ended: {access.get_end_reason_display().lower()}",
                details={"access": access.pk, "reason": reason}, now=now,
            )
            enqueue_on_commit("invitations.send_access_notice", access.pk, NoticeKind.ENDED_TO_REPRESENTATIVE)
            if reason == EndReason.CAME_OF_AGE:
                enqueue_on_commit("invitations.welcome_new_adult", access.pk)
            ids.append(access_id)
    return len(ids)


def remind_ending_soon(*, now: datetime.datetime) -> int:
    """Claim, then remind, each patient whose caregiver's access ends within REMINDER_BEFORE_END."""
    reminded = 0
    for access_id in RepresentativeAccess.objects.filter(ends_soon(now, REMINDER_BEFORE_END)).values_list("pk", flat=True):
        if RepresentativeAccess.objects.filter(ends_soon(now, REMINDER_BEFORE_END), pk=access_id).update(reminded_at=now):
            enqueue_on_commit("invitations.send_access_notice", access_id, NoticeKind.ENDS_SOON_TO_PATIENT)
            reminded += 1
    return reminded


def welcome_new_adult(access_id: int, *, now: datetime.datetime) -> str:
    """After a parent's access ended at the patient's majority: invite the new adult to their own
    account where the rules allow (their own address, consent...), and tell them their portal is
    theirs now. Once per patient however many parents' accesses ended: claimed under the patient's
    row lock on the first of them (`patient_notified_at`)."""
    from invitations import services  # services imports nothing of this module; kept local to read top-down

    with transaction.atomic():
        access = RepresentativeAccess.objects.filter(pk=access_id).first()
        if access is None:
            return "missing"
        patient = Patient.objects.select_for_update(of=("self",)).select_related("practice").get(pk=access.patient_id)
        already = RepresentativeAccess.objects.filter(
            patient=patient, end_reason=EndReason.CAME_OF_AGE, patient_notified_at__isnull=False,
        ).exists()
        if already or not RepresentativeAccess.objects.filter(pk=access.pk, patient_notified_at__isnull=True).update(
            patient_notified_at=now
        ):
            return "done-before"
        invited = False
        if not patient.has_portal_account:
            invited = services.invite(patient, now=now, source=Source.CAME_OF_AGE).created
        enqueue_on_commit("invitations.send_access_notice", access.pk, NoticeKind.ENDED_TO_PATIENT, invited)
    return "invited" if invited else "told"


def _patient_address(access: RepresentativeAccess) -> str:
    """The patient's own address, if they have one that is not a representative's (a notice about
    access must reach the patient, not the parent who shares the family inbox)."""
    patient = access.patient
    email = normalise_email(patient.email)
    if not email or not patient.email_consent:
        return ""
    theirs = {normalise_email(e) for e in RepresentativeAccess.objects.filter(patient=patient).values_list("representative__email", flat=True)}
    return "" if email in theirs else email


def send_notice(access_id: int, kind: str, *, now: datetime.datetime, invited: bool = False) -> str:
    """Send one notice about an access at most once (`AccessNotice`: inserting its row is the claim).
    Returns what happened, for logs and tests."""
    access = RepresentativeAccess.objects.select_related("representative", "patient__practice").filter(pk=access_id).first()
    if access is None:
        return "missing"
    patient, practice, representative = access.patient, access.patient.practice, access.representative
    if kind == NoticeKind.ENDED_TO_REPRESENTATIVE:
        to = normalise_email(representative.email)
        subject, body = wording.ended_for_representative(
            representative=representative, patient=patient, practice=practice,
            came_of_age=access.end_reason == EndReason.CAME_OF_AGE,
        )
    elif kind == NoticeKind.ENDED_TO_PATIENT:
        to = _patient_address(access)
        subject, body = wording.ended_for_patient(patient=patient, practice=practice, invited=invited)
    else:
        to = _patient_address(access)
        subject, body = wording.ends_soon_for_patient(patient=patient, representative=representative, practice=practice, ends_at=access.ends_at)
    try:
        with transaction.atomic():
            notice = AccessNotice.objects.create(access=access, kind=kind, to=to, created_at=now)
    except IntegrityError:
        return "sent-before"
    if not to:
        AccessNotice.objects.filter(pk=notice.pk).update(failure="No email address of the recipient's own on file.")
        return "no-address"
    message = EmailMessage(
        subject=subject, body=body, from_email=invitation_email.from_address(practice), to=[to],
        reply_to=[practice.contact_email] if practice.contact_email else None,
    )
    message.tags = ["portal-access-notice"]
    outcome = engine.send_one(Item(key=notice.pk, to=to, payload=message), via=email_transport.for_one())
    if outcome.sent:
        AccessNotice.objects.filter(pk=notice.pk).update(sent_at=now)
        return "sent"
    AccessNotice.objects.filter(pk=notice.pk).update(failure=outcome.error.detail[:300])
    logger.warning("access notice %s (%s) failed: %s", notice.pk, kind, outcome.error.detail.split(":")[0])
    return "failed"


# -- linking a representative's login from their invitation -------------------------------------------


@dataclass
class LinkAttempt:
    #: "linked", "mismatch" (wrong last name or date of birth, counted), "voided", "used", "expired",
    #: "username_taken", "sign_in_failed" (counted like a wrong answer), "not_a_portal_login".
    outcome: str
    user: Optional[object] = None


def link_state(invitation: Invitation, now: datetime.datetime) -> str:
    """What a representative's link is now: "usable", "used", "expired" or "voided"."""
    access = invitation.access
    if invitation.status == Status.ACCEPTED or access.status == AccessStatus.ACTIVE:
        return "used"
    if access.status in (AccessStatus.ENDED, AccessStatus.REVOKED):
        return "voided"
    if invitation.is_expired(now):
        return "expired"
    if invitation.status in (Status.REVOKED, Status.FAILED):
        return "voided"
    return "usable"


def may_represent(user) -> bool:
    """A portal login (never a staff account) may be a representative's."""
    return bool(user and user.is_active and not user.is_staff and not user.is_superuser)


def attempt_link(
    invitation_id: int, *, last_name: str, date_of_birth, now: datetime.datetime, via: str,
    signed_in_user=None, username: str = "", password: str = "", new_login: bool = True,
) -> LinkAttempt:
    """One attempt on a representative's link, serialised with every other attempt on it (the
    invitation row is locked, a wrong answer counted in the same transaction, five void the link,
    as for a patient's own link). The patient's last name and date of birth must match the chart;
    then the representative's own login is linked: the one signed in, an existing one (its password
    checked; a wrong one counts as a wrong answer), or a new one. Whether a username is taken is
    told only after the identity matched."""
    from invitations import services  # identity_matches: one comparison rule for every link

    with transaction.atomic():
        invitation = (
            Invitation.objects.select_for_update(of=("self",))
            .select_related("patient__practice", "access__representative").filter(pk=invitation_id, access__isnull=False).first()
        )
        if invitation is None:
            return LinkAttempt("voided")
        state = link_state(invitation, now)
        if state != "usable":
            return LinkAttempt(state)
        if not services.identity_matches(invitation.patient, last_name=last_name, date_of_birth=date_of_birth):
            return LinkAttempt("voided" if invitation.record_failed_attempt(now) else "mismatch")
        representative = invitation.access.representative
        if signed_in_user is not None:
            user = signed_in_user
            if not may_represent(user):
                return LinkAttempt("not_a_portal_login")
        elif new_login:
            if User.objects.filter(username__iexact=username).exists():
                return LinkAttempt("username_taken")
            try:
                with transaction.atomic():
                    user = User(
                        username=username, email=representative.email, first_name=representative.first_name[:150],
                        last_name=representative.last_name[:150], is_staff=False, is_superuser=False,
                    )
                    user.set_password(password)
                    user.save()
            except IntegrityError:
                return LinkAttempt("username_taken")
        else:
            user = authenticate(username=(username or "").strip().lower(), password=password)
            if user is None or not may_represent(user):
                return LinkAttempt("voided" if invitation.record_failed_attempt(now) else "sign_in_failed")
        if representative.portal_user_id not in (None, user.pk):
            # The person already linked another login: their access is reached through that one.
            return LinkAttempt("used")
        if not invitation.accept(now, via=via):
            return LinkAttempt("used")
        Representative.objects.filter(pk=representative.pk, portal_user__isnull=True).update(portal_user=user)
        access = invitation.access
        access.activate(now)
        for other in Invitation.objects.open().filter(access_id=access.pk).exclude(pk=invitation.pk):
            other.revoke(now, reason=RevokeReason.REGISTERED)
        audit.record(
            practice_id=access.practice_id, actor=None, patient_id=access.patient_id,
            action=AuditAction.REPRESENTATIVE_LINKED,
            summary=f"Representative {representative} linked their login", details={"access": access.pk}, now=now,
        )
    return LinkAttempt("linked", user)


# -- what a login may open ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Record:
    """One patient's portal as a login may open it: as the patient, or as a representative with a level."""

    patient: Patient
    role: str  # "self" or "representative"
    level: str  # AccessLevel
    access_id: Optional[int] = None
    relationship: str = ""

    @property
    def is_own(self) -> bool:
        return self.role == "self"

    @property
    def limited(self) -> bool:
        return self.level == AccessLevel.LIMITED

    @property
    def relationship_label(self) -> str:
        return Relationship(self.relationship).label.lower() if self.relationship else ""


def records_of(user, *, now: datetime.datetime) -> list[Record]:
    """Every portal `user` may open now: their own first, then the patients they act for (accesses in
    force only: a revoked, ended or run-out access is gone on the next request)."""
    if not may_represent(user):
        return []
    records = []
    own = Patient.objects.select_related("practice").filter(portal_user=user).first()
    if own is not None:
        records.append(Record(patient=own, role="self", level=AccessLevel.FULL))
    accesses = (
        RepresentativeAccess.objects.in_force(now).of_user(user).filter(practice__family_access_enabled=True)
        .select_related("patient__practice").order_by("patient__first_name", "level", "pk")
    )
    seen = {own.pk} if own is not None else set()
    for access in accesses:
        if access.patient_id in seen:
            continue  # the first (full before limited) access to a patient counts
        seen.add(access.patient_id)
        records.append(Record(
            patient=access.patient, role="representative", level=access.level, access_id=access.pk,
            relationship=access.relationship,
        ))
    return records


def record_visit(record: Record, user, *, now: datetime.datetime) -> None:
    """A representative opened a patient's portal: in the audit trail (who, whose, when)."""
    if record.is_own:
        return
    audit.record(
        practice_id=record.patient.practice_id, actor=user, patient_id=record.patient.pk,
        action=AuditAction.REPRESENTATIVE_VISIT,
        summary="A representative opened the patient's portal",
        details={"access": record.access_id, "user": user.pk}, now=now,
    )


def accesses_of_patient(patient: Patient):
    return RepresentativeAccess.objects.filter(patient=patient).select_related("representative").order_by("-granted_at", "-pk")


def registered_via_representative(now: datetime.datetime) -> Q:
    """Patient rows without an own account whose representative linked their login and may open the
    portal now (an access in force, family access on): the dashboard's "registered by a
    representative". An EXISTS, so counting it never multiplies a patient by their parents."""
    linked = RepresentativeAccess.objects.in_force(now).filter(patient_id=OuterRef("pk"), practice__family_access_enabled=True)
    return Q(portal_user__isnull=True) & Q(Exists(linked))
