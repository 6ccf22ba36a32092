"""Portal invitations: one registration link for one patient, by email, by text or both.

An invitation by both channels carries two links (each token hashed on its own row column); either
registers the patient once. The status is the invitation's: sent once either channel went out,
failed only when every channel it uses failed. The text's own state is `text_status`, written by
the transitions in `invitations.models.text_transitions`.

The status column is written only by the transition methods of `Invitation`. Each is one
conditional ``UPDATE ... WHERE status IN (...)``: when two processes race (a worker and a
click, two workers, the expiry sweep and a registration), exactly one of them changes the
row and records the event; the other learns from the row count that it lost and does nothing.
"""

import datetime
import hmac
import uuid
from typing import Iterable, Optional

from django.conf import settings
from django.db import models, transaction
from django.db.models import F, Q

from patients.models import Patient, Practice

from invitations.vocabulary import (  # noqa: F401 - the vocabulary is read through this module too
    LIVE_TEXT,
    OPEN_STATUSES,
    TEXT_TOKEN_BYTES,
    Channel,
    RevokeReason,
    Source,
    Status,
    TextStatus,
    created_detail,
    hash_token,
    new_token,
)
from invitations.models.events import EventKind, InvitationEvent
from invitations.models.batch_transitions import BatchTransitions
from invitations.models.conditions import (  # noqa: F401 - read through this module too
    MAX_FAILED_ATTEMPTS, SEND_CLAIM_LEASE, SEND_GIVE_UP_AFTER, claimable, email_unsent, no_channel_left, run_out,
)
from invitations.models.text_transitions import TextTransitions
from invitations.models.template import InvitationTemplate


class InvitationQuerySet(BatchTransitions, TextTransitions, models.QuerySet):
    def open(self) -> "InvitationQuerySet":
        """Pending or sent, whatever the clock says (see `usable` for links that still work)."""
        return self.filter(status__in=OPEN_STATUSES)

    # Expiry, expressed once for querysets; `Invitation.is_expired` is the same rule for one row.
    def expired_as_of(self, now: datetime.datetime) -> "InvitationQuerySet":
        """Open invitations whose link has run out (the sweep has not marked them yet)."""
        return self.filter(run_out(now))

    def usable(self, now: datetime.datetime) -> "InvitationQuerySet":
        return self.open().filter(expires_at__gt=now)

    def own(self) -> "InvitationQuerySet":
        """The patients' own invitations (not those to their representatives)."""
        return self.filter(access__isnull=True)

    def to_representatives(self) -> "InvitationQuerySet":
        return self.filter(access__isnull=False)

    def create_latest(self, *, patient, **fields) -> "Invitation":
        """Create the patient's newest invitation. The only way invitations are made: it keeps
        `is_latest` on exactly one row per patient (callers hold the patient's row lock). It is
        in the patient's language unless told otherwise."""
        fields.setdefault("language", patient.preferred_language)
        with transaction.atomic():
            self.model.objects.filter(patient=patient, is_latest=True).update(is_latest=False)
            return self.create(patient=patient, is_latest=True, **fields)

    def create_for_representative(self, *, access, **fields) -> "Invitation":
        """An invitation to a representative to act for `access.patient` (never the patient's
        latest: the patient's status column reads their own invitations only)."""
        fields.setdefault("language", access.patient.preferred_language)
        return self.create(patient_id=access.patient_id, practice_id=access.practice_id, access=access, is_latest=False, **fields)


class Invitation(models.Model):
    public_id = models.UUIDField(
        default=uuid.uuid4, unique=True, editable=False,
        help_text="Opaque id shared with the email service; reveals nothing.",
    )
    # Every index is written again for each status change (a bulk run inserts and then marks
    # 100,000 rows; the sweep marks as many), so the table keeps only the indexes a query
    # needs: the foreign keys are served by the composite indexes below that start with them.
    practice = models.ForeignKey(Practice, on_delete=models.CASCADE, related_name="invitations", db_index=False)
    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="invitations", db_index=False)
    email = models.EmailField(blank=True, help_text="The address this link was sent to (a snapshot).")
    by_email = models.BooleanField(default=True, db_default=True, editable=False)
    by_text = models.BooleanField(default=False, db_default=False, editable=False)
    email_failed_at = models.DateTimeField(null=True, blank=True, editable=False)
    # The text: the number it went to (a snapshot), its own link's token hash, where it is.
    text_to = models.CharField(max_length=20, blank=True, default="", db_default="", editable=False)
    text_token_hash = models.CharField(max_length=64, null=True, blank=True, editable=False)
    text_status = models.CharField(max_length=12, choices=TextStatus.choices, blank=True, default="", db_default="", editable=False)
    text_claimed_at = models.DateTimeField(null=True, blank=True, editable=False)
    text_attempts = models.PositiveSmallIntegerField(default=0, db_default=0, editable=False)
    text_sent_at = models.DateTimeField(null=True, blank=True, editable=False)
    text_sid = models.CharField(max_length=40, blank=True, default="", db_default="", editable=False)
    text_error = models.CharField(max_length=300, blank=True, default="", db_default="", editable=False)
    accepted_via = models.CharField(max_length=5, choices=Channel.choices, blank=True, default="", db_default="", editable=False)
    # The patient's language when the invitation was made: its email and text are written in it (or
    # the practice's language where that one is not written yet) and its link opens in it.
    language = models.CharField(max_length=10, blank=True, default="", db_default="", editable=False)
    # Set when a worker claims the invitation for sending: the token is made there, put in
    # the email and forgotten, so it never sits in the database or the task queue.
    # Unique through Meta.constraints: a unique CharField would also get a LIKE index no query uses.
    token_hash = models.CharField(max_length=64, null=True, blank=True, editable=False)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING, editable=False)
    revoke_reason = models.CharField(max_length=20, choices=RevokeReason.choices, blank=True, editable=False)
    failure_reason = models.CharField(max_length=300, blank=True, editable=False)
    source = models.CharField(max_length=12, choices=Source.choices, default=Source.MANUAL)
    # Not indexed: only deleting a staff user looks invitations up by it (a rare scan).
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", db_index=False
    )
    created_at = models.DateTimeField(editable=False)
    sending_started_at = models.DateTimeField(null=True, blank=True, editable=False)
    send_attempts = models.PositiveSmallIntegerField(default=0, editable=False)
    sent_at = models.DateTimeField(null=True, blank=True, editable=False)
    expires_at = models.DateTimeField(editable=False)
    accepted_at = models.DateTimeField(null=True, blank=True, editable=False)
    ended_at = models.DateTimeField(
        null=True, blank=True, editable=False, help_text="When it was revoked, expired or failed."
    )
    provider_message_id = models.CharField(max_length=200, blank=True, editable=False)
    failed_attempts = models.PositiveSmallIntegerField(default=0, editable=False)
    # The patient's newest invitation carries the flag, so the patient list can join to it
    # (one indexed join) instead of finding the latest row with a subquery per patient.
    is_latest = models.BooleanField(default=True, editable=False)
    # An invitation to a representative (a parent, guardian or caregiver, `patients.models.representatives`)
    # to act for the patient: it goes to the representative's address or number and links their own
    # login. The patient's own invitations have none, and only they carry `is_latest`.
    access = models.ForeignKey(
        "patients.RepresentativeAccess", null=True, blank=True, on_delete=models.CASCADE, related_name="invitations",
        db_index=False, editable=False,
    )

    objects = InvitationQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # At most one live link per patient: a resend revokes the old one first, and two
            # staff clicking "Invite" at once cannot both create one.
            models.UniqueConstraint(
                fields=["patient"],
                condition=Q(status__in=["pending", "sent"], access__isnull=True),
                name="invitation_one_open_per_patient",
                violation_error_message="This patient already has an open invitation.",
            ),
            # ...and at most one per representative's access.
            models.UniqueConstraint(
                fields=["access"],
                condition=Q(status__in=["pending", "sent"], access__isnull=False),
                name="invitation_one_open_per_access",
                violation_error_message="This representative already has an open invitation.",
            ),
            models.UniqueConstraint(
                fields=["patient"], condition=Q(is_latest=True), name="invitation_one_latest_per_patient"
            ),
            models.UniqueConstraint(fields=["token_hash"], name="invitation_token_hash_unique"),
            models.UniqueConstraint(fields=["text_token_hash"], name="invitation_text_token_hash_unique"),
        ]
        indexes = [
            models.Index(fields=["patient", "-created_at", "-id"], name="invitation_latest_idx"),
            models.Index(fields=["access", "-created_at"], condition=Q(access__isnull=False), name="invitation_access_idx"),
            # The failed-invitations list; other statuses are common enough to find by date.
            models.Index(fields=["practice", "-created_at"], condition=Q(status="failed"), name="invitation_failed_idx"),
            models.Index(fields=["practice", "-created_at", "-id"], name="invitation_recent_idx"),
            models.Index(
                fields=["expires_at"], condition=Q(status__in=["pending", "sent"]), name="invitation_open_expiry_idx"
            ),
            # Revoking the open links of an address that opted out.
            models.Index(
                fields=["practice", "email"], condition=Q(status__in=["pending", "sent"]), name="invitation_open_email_idx"
            ),
            models.Index(
                fields=["practice", "status", "expires_at"], condition=Q(is_latest=True), name="invitation_latest_status_idx"
            ),
            # Delivery reports that carry no metadata are matched by the provider's message id.
            models.Index(
                fields=["provider_message_id"], condition=~Q(provider_message_id=""), name="invitation_message_id_idx"
            ),
            # Twilio's status callbacks name the text by its SID; the text sweep finds unsent texts.
            models.Index(fields=["text_sid"], condition=~Q(text_sid=""), name="invitation_text_sid_idx"),
            # A reply or a text opt-out finds the invitations texted to the number.
            models.Index(fields=["text_to"], condition=Q(by_text=True), name="invitation_text_to_idx"),
            models.Index(fields=["created_at"], condition=Q(text_status="pending"), name="invitation_text_pending_idx"),
        ]

    def __str__(self) -> str:
        return f"Invitation {self.public_id} ({self.get_status_display()})"

    # -- reading ---------------------------------------------------------------------------

    @property
    def for_representative(self) -> bool:
        return self.access_id is not None

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    def is_expired(self, now: datetime.datetime) -> bool:
        """Same rule as `InvitationQuerySet.expired_as_of`, for one row."""
        return self.status == Status.EXPIRED or (self.is_open and self.expires_at <= now)

    def is_usable(self, now: datetime.datetime) -> bool:
        return self.is_open and self.expires_at > now

    def wording(self) -> InvitationTemplate:
        """The version of the practice's wording this invitation is written in: its language's, or
        the practice's language's where that one is not written yet (`InvitationTemplate.choose`)."""
        return InvitationTemplate.choose(self.practice, self.language or self.patient.preferred_language)

    def token_matches(self, token: str) -> Optional[str]:
        """Which of this invitation's links `token` is ("email" or "text"), else None."""
        hashed = hash_token(token)
        for via, stored in ((Channel.EMAIL, self.token_hash), (Channel.TEXT, self.text_token_hash)):
            if stored and hmac.compare_digest(stored, hashed):
                return via
        return None

    @classmethod
    def find_by_token(cls, token: str) -> Optional["Invitation"]:
        """The invitation whose email or text link carries `token`; `found_via` says which."""
        if not token or len(token) > 100:
            return None
        hashed = hash_token(token)
        invitation = (
            cls.objects.select_related("practice", "patient").filter(Q(token_hash=hashed) | Q(text_token_hash=hashed)).first()
        )
        via = invitation.token_matches(token) if invitation is not None else None
        if via is None:
            return None
        invitation.found_via = via
        return invitation

    # -- transitions: the only code that writes `status` -------------------------------------

    def _transition(
        self,
        *,
        from_statuses: Iterable[str],
        now: datetime.datetime,
        event: str,
        actor=None,
        detail: str = "",
        extra_filter: Optional[Q] = None,
        **fields,
    ) -> bool:
        rows = Invitation.objects.filter(pk=self.pk, status__in=list(from_statuses))
        if extra_filter is not None:
            rows = rows.filter(extra_filter)
        with transaction.atomic():
            if not rows.update(**fields):
                self.refresh_from_db()
                return False
            self.record(event, now=now, actor=actor, detail=detail)
        for name, value in fields.items():
            setattr(self, name, value)
        return True

    def record(self, kind: str, *, now: datetime.datetime, actor=None, detail: str = "") -> "InvitationEvent":
        """Add a timeline entry. `detail` must never contain health information."""
        return InvitationEvent.objects.create(
            invitation=self, kind=kind, at=now, actor=actor if actor is not None and actor.pk else None,
            detail=detail[:300],
        )

    def claim_for_sending(self, now: datetime.datetime) -> Optional[str]:
        """Claim a pending invitation for one send attempt; return the new token, or None.

        None means another worker holds it, or it was already sent, revoked or expired.
        The token is made here and only its hash is stored. A worker that dies after the email
        service accepted the message but before `mark_sent` leaves the claim to lapse; the
        redelivered task then sends a fresh link (at-least-once in that one instant: the first
        link stops working). Losing the invitation instead would leave the patient with nothing.
        """
        token = new_token()
        claimed = (
            Invitation.objects.filter(claimable(now), pk=self.pk)
            .update(sending_started_at=now, token_hash=hash_token(token), send_attempts=F("send_attempts") + 1)
        )
        if not claimed:
            return None
        self.sending_started_at, self.token_hash = now, hash_token(token)
        self.send_attempts += 1
        return token

    def release_claim(self, now: datetime.datetime, *, detail: str) -> None:
        """The email service failed for a reason that may pass; let the retry claim it again."""
        if Invitation.objects.filter(email_unsent(), pk=self.pk).update(sending_started_at=None):
            self.sending_started_at = None
            self.record(EventKind.SEND_RETRY, now=now, detail=detail)

    def mark_sent(self, now: datetime.datetime, *, message_id: str = "") -> bool:
        return self._transition(
            from_statuses=OPEN_STATUSES, now=now, event=EventKind.SENT, extra_filter=email_unsent(),
            status=Status.SENT, sent_at=now, provider_message_id=message_id[:200], sending_started_at=None,
        )

    def fail(self, now: datetime.datetime, *, reason: str) -> bool:
        """The email service refused the message or it bounced: the email has failed, and the
        invitation with it unless its text may still arrive. True if the email was not failed yet."""
        if not self.by_email:
            return False
        changed = self._transition(
            from_statuses=OPEN_STATUSES, now=now, event=EventKind.FAILED, detail=reason,
            extra_filter=Q(email_failed_at__isnull=True),
            email_failed_at=now, failure_reason=reason[:300], sending_started_at=None,
        )
        if changed and Invitation.objects.filter(pk=self.pk).fail_when_no_channel_left(now):
            self.refresh_from_db(fields=["status", "ended_at", "text_claimed_at"])
        return changed

    def accept(self, now: datetime.datetime, *, via: str = Channel.EMAIL) -> bool:
        """The patient registered with this link. Only a link that has not run out can be used."""
        return self._transition(
            from_statuses=OPEN_STATUSES, now=now, event=EventKind.ACCEPTED,
            extra_filter=Q(expires_at__gt=now), detail="" if via == Channel.EMAIL else "With the link in the text",
            status=Status.ACCEPTED, accepted_at=now, ended_at=now, sending_started_at=None, text_claimed_at=None,
            accepted_via=via,
        )

    def revoke(self, now: datetime.datetime, *, reason: str, actor=None) -> bool:
        return self._transition(
            from_statuses=OPEN_STATUSES, now=now, event=EventKind.REVOKED, actor=actor,
            detail=RevokeReason(reason).label,
            status=Status.REVOKED, revoke_reason=reason, ended_at=now, sending_started_at=None,
        )

    def expire(self, now: datetime.datetime) -> bool:
        return self._transition(
            from_statuses=OPEN_STATUSES, now=now, event=EventKind.EXPIRED,
            extra_filter=Q(expires_at__lte=now),
            status=Status.EXPIRED, ended_at=now, sending_started_at=None,
        )

    def record_failed_attempt(self, now: datetime.datetime) -> bool:
        """Count one wrong identity answer; the fifth voids the link. Returns True if voided."""
        with transaction.atomic():
            counted = Invitation.objects.filter(pk=self.pk, status__in=OPEN_STATUSES).update(
                failed_attempts=F("failed_attempts") + 1
            )
            self.refresh_from_db(fields=["failed_attempts", "status"])
            if counted:
                self.record(
                    EventKind.VERIFICATION_FAILED, now=now,
                    detail=f"Attempt {self.failed_attempts} of {MAX_FAILED_ATTEMPTS}",
                )
        if counted and self.failed_attempts >= MAX_FAILED_ATTEMPTS:
            self.revoke(now, reason=RevokeReason.TOO_MANY_ATTEMPTS)
            return True
        return False

