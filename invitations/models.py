"""Portal invitations: one registration link for one patient, by email, by text or both.

An invitation by both channels carries two links (each token hashed on its own row column); either
registers the patient once. The status is the invitation's: sent once either channel went out,
failed only when every channel it uses failed. The text's own state is `text_status`, written by
the transitions in `invitations.texting`.

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

from . import sql
from .vocabulary import (  # noqa: F401 - the vocabulary is read through this module too
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
from .events import EventKind, InvitationEvent
from .texting import TextTransitions

#: How many wrong identity answers void a link.
MAX_FAILED_ATTEMPTS = 5
#: A worker that claimed an invitation for sending but never finished (it died) gives it up
#: after this long, so a redelivered task can send it.
SEND_CLAIM_LEASE = datetime.timedelta(seconds=settings.PORTAL_SEND_CLAIM_LEASE_SECONDS)
#: An invitation the email service has kept refusing (an outage, our account refused) this long
#: is failed with the reason, so staff see it and can resend: single sends and bulk runs alike.
SEND_GIVE_UP_AFTER = datetime.timedelta(hours=3)


def run_out(now: datetime.datetime, *, via: str = "") -> Q:
    """Open, but the link has run out: the expiry rule for SQL, written once (`via` reaches the
    invitation from another model, e.g. "latest_invitation__"). `Invitation.is_expired` is the
    same rule for one row."""
    return Q(**{f"{via}status__in": list(OPEN_STATUSES), f"{via}expires_at__lte": now})


def email_unsent() -> Q:
    """Its email is still to go: pending, or sent by text only so far."""
    return Q(by_email=True, sent_at__isnull=True, email_failed_at__isnull=True) & (
        Q(status=Status.PENDING) | Q(status=Status.SENT, by_text=True)
    )


def claimable(now: datetime.datetime) -> Q:
    """Its email is still to go, its link still works, and no worker holds it (never claimed, or
    the claim lapsed): the claim rule, written once for the single send
    (`Invitation.claim_for_sending`) and a bulk chunk's retry (`InvitationQuerySet.claim_many`)."""
    return email_unsent() & Q(expires_at__gt=now) & (
        Q(sending_started_at__isnull=True) | Q(sending_started_at__lte=now - SEND_CLAIM_LEASE)
    )


def no_channel_left() -> Q:
    """Every channel the invitation uses has failed: the invitation has failed."""
    return ~(Q(by_email=True, email_failed_at__isnull=True) | Q(by_text=True, text_status__in=list(LIVE_TEXT)))


class InvitationQuerySet(TextTransitions, models.QuerySet):
    def open(self) -> "InvitationQuerySet":
        """Pending or sent, whatever the clock says (see `usable` for links that still work)."""
        return self.filter(status__in=OPEN_STATUSES)

    # Expiry, expressed once for querysets; `Invitation.is_expired` is the same rule for one row.
    def expired_as_of(self, now: datetime.datetime) -> "InvitationQuerySet":
        """Open invitations whose link has run out (the sweep has not marked them yet)."""
        return self.filter(run_out(now))

    def usable(self, now: datetime.datetime) -> "InvitationQuerySet":
        return self.open().filter(expires_at__gt=now)

    def create_latest(self, *, patient, **fields) -> "Invitation":
        """Create the patient's newest invitation. The only way invitations are made: it keeps
        `is_latest` on exactly one row per patient (callers hold the patient's row lock)."""
        with transaction.atomic():
            self.model.objects.filter(patient=patient, is_latest=True).update(is_latest=False)
            return self.create(patient=patient, is_latest=True, **fields)

    # -- batch transitions (a bulk run's chunk): one statement each, whatever the batch size --

    def create_claimed_many(
        self, rows: list[tuple[int, str, str]], *, practice: Practice, source: str, actor_id: Optional[int], now: datetime.datetime,
    ) -> dict[int, tuple[int, Optional[str], uuid.UUID, Optional[str]]]:
        """`create_latest` for a batch, one INSERT (the caller holds the patients' row locks): the newest invitation
        of each (patient id, address or "", mobile number or ""), by email and/or text, each channel claimed for
        sending, with a CREATED event each in a single invite's words (`vocabulary.created_detail`). Returns
        {patient id: (invitation id, email token, public id, text token)}, None for a channel not used."""
        if not rows:
            return {}
        public_ids, expires_at = {pk: uuid.uuid4() for pk, _, _ in rows}, practice.link_expires_at(now)
        email_tokens = {pk: new_token() for pk, email, _ in rows if email}
        text_tokens = {pk: new_token(TEXT_TOKEN_BYTES) for pk, _, phone in rows if phone}
        with transaction.atomic():
            self.model.objects.filter(patient_id__in=list(public_ids), is_latest=True).update(is_latest=False)
            made = sql.insert_rows(
                Invitation,
                ["public_id", "practice", "patient", "email", "token_hash", "status", "revoke_reason", "failure_reason", "source",
                 "created_by", "created_at", "sending_started_at", "send_attempts", "expires_at", "provider_message_id",
                 "failed_attempts", "is_latest", "by_email", "by_text", "text_to", "text_token_hash", "text_status", "text_claimed_at"],
                [(public_ids[pk], practice.pk, pk, email, email and hash_token(email_tokens[pk]) or None, Status.PENDING, "", "",
                  source, actor_id, now, now if email else None, 0, expires_at, "", 0, True, bool(email), bool(phone), phone,
                  phone and hash_token(text_tokens[pk]) or None, TextStatus.PENDING if phone else TextStatus.NONE, now if phone else None)
                 for pk, email, phone in rows],
                returning=["id", "patient"],
            )
            channels = {pk: [c for c, used in ((Channel.EMAIL, email), (Channel.TEXT, phone)) if used] for pk, email, phone in rows}
            sql.insert_rows(
                InvitationEvent, ["invitation", "kind", "at", "actor", "detail"],
                [(invitation_id, EventKind.CREATED, now, actor_id, created_detail(source, channels[pk])) for invitation_id, pk in made],
            )
        return {pk: (invitation_id, email_tokens.get(pk), public_ids[pk], text_tokens.get(pk)) for invitation_id, pk in made}

    def claim_many(self, now: datetime.datetime) -> list[tuple["Invitation", str]]:
        """Claim for sending every row of this queryset that the claim rule allows, each with a
        new token: `claim_for_sending` for a batch. Returns (invitation, token) for the rows this
        caller really claimed (another worker may win some between the read and the write)."""
        candidates = list(self.filter(claimable(now)))
        if not candidates:
            return []
        tokens = {}
        for invitation in candidates:
            tokens[invitation.pk] = new_token()
            invitation.token_hash = hash_token(tokens[invitation.pk])
            invitation.sending_started_at = now
        # `send_attempts` stays: it counts a single send's tries for the unsent sweep
        # (invitations.services.requeue_unsent); a chunk counts its own attempts.
        self.model.objects.filter(claimable(now)).bulk_update(candidates, ["token_hash", "sending_started_at"])
        ours = set(self.model.objects.filter(token_hash__in=[i.token_hash for i in candidates]).values_list("pk", flat=True))
        return [(invitation, tokens[invitation.pk]) for invitation in candidates if invitation.pk in ours]

    def mark_sent_many(self, sent: list[tuple[int, str]], *, now: datetime.datetime) -> list[int]:
        """Pending -> sent for each (pk, the provider's message id), with a SENT event each.
        Only rows still pending change (a row revoked meanwhile stays revoked); returns those."""
        if not sent:
            return []
        with transaction.atomic():
            changed = sql.update_from_values(
                Invitation, [(pk, message_id[:200]) for pk, message_id in sent], columns=["provider_message_id"],
                set_fields={"status": Status.SENT, "sent_at": now, "sending_started_at": None}, where={}, still=email_unsent(),
            )
            sql.insert_rows(InvitationEvent, ["invitation", "kind", "at", "detail"], [(pk, EventKind.SENT, now, "") for pk in changed])
        return changed

    def fail_many(self, failed: list[tuple[int, str]], *, now: datetime.datetime) -> list[int]:
        """The email service refused the message, for each (pk, reason) whose email was still to
        go: its email has failed, and the invitation too unless its text may still arrive."""
        if not failed:
            return []
        with transaction.atomic():
            changed = set(sql.update_from_values(
                Invitation, [(pk, reason[:300]) for pk, reason in failed], columns=["failure_reason"],
                set_fields={"email_failed_at": now, "sending_started_at": None}, where={}, still=email_unsent(),
            ))
            sql.insert_rows(
                InvitationEvent, ["invitation", "kind", "at", "detail"],
                [(pk, EventKind.FAILED, now, reason[:300]) for pk, reason in failed if pk in changed],
            )
            self.model.objects.filter(pk__in=changed).fail_when_no_channel_left(now)
        return sorted(changed)

    def fail_when_no_channel_left(self, now: datetime.datetime) -> int:
        """Open -> failed for the rows of this queryset whose every channel has failed."""
        return self.filter(no_channel_left(), status__in=list(OPEN_STATUSES)).update(
            status=Status.FAILED, ended_at=now, sending_started_at=None, text_claimed_at=None,
        )

    def revoke_open(self, *, reason: str, now: datetime.datetime, actor_id: Optional[int] = None) -> list[int]:
        """Open -> revoked for every open invitation of this queryset, with a REVOKED event each
        (a resend run replacing links). One UPDATE re-checked on each row; returns those it changed."""
        with transaction.atomic():
            changed = sql.update_returning(
                Invitation, self.open().values("pk"),
                set_fields={"status": Status.REVOKED, "revoke_reason": reason, "ended_at": now, "sending_started_at": None},
                still=Q(status__in=list(OPEN_STATUSES)),
            )
            sql.insert_rows(
                InvitationEvent, ["invitation", "kind", "at", "actor", "detail"],
                [(pk, EventKind.REVOKED, now, actor_id, RevokeReason(reason).label) for pk in changed],
            )
        return changed

    def release_many(self, released: list[tuple[int, str]], *, now: datetime.datetime) -> None:
        """Give back the send claims of pending rows that were not sent, so a later attempt
        claims them again (with a new token); a "sending delayed" event for each that met an
        error (`detail`), none for those never tried."""
        if not released:
            return
        with transaction.atomic():
            self.filter(email_unsent(), pk__in=[pk for pk, _ in released]).update(sending_started_at=None)
            sql.insert_rows(
                InvitationEvent, ["invitation", "kind", "at", "detail"],
                [(pk, EventKind.SEND_RETRY, now, detail[:300]) for pk, detail in released if detail],
            )

    def expire_due(self, now: datetime.datetime, *, batch_size: int = 5000) -> int:
        """Mark every open, run-out invitation in this queryset `expired`, with one event each.

        Set-based, in batches: one UPDATE that changes only rows still open (re-checked on
        each row, so a sweep running at the same time, or a patient registering, wins the
        row and this one skips it) and returns the ids it changed; one bulk insert of their
        events. The rows are not locked first: the UPDATE's own condition is the claim.
        """
        total = 0
        while True:
            # The partial index on open links' expiry finds the batch; ordering by pk would
            # walk the whole table for each batch of a big sweep.
            batch = self.expired_as_of(now).order_by("expires_at").values("pk")[:batch_size]
            with transaction.atomic():
                changed = sql.update_returning(
                    Invitation, batch, set_fields={"status": Status.EXPIRED, "ended_at": now, "sending_started_at": None},
                    still=run_out(now),
                )
                sql.insert_rows(InvitationEvent, ["invitation", "kind", "at", "detail"], [(pk, EventKind.EXPIRED, now, "") for pk in changed])
            total += len(changed)
            if not changed:
                return total


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

    objects = InvitationQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # At most one live link per patient: a resend revokes the old one first, and two
            # staff clicking "Invite" at once cannot both create one.
            models.UniqueConstraint(
                fields=["patient"],
                condition=Q(status__in=["pending", "sent"]),
                name="invitation_one_open_per_patient",
                violation_error_message="This patient already has an open invitation.",
            ),
            models.UniqueConstraint(
                fields=["patient"], condition=Q(is_latest=True), name="invitation_one_latest_per_patient"
            ),
            models.UniqueConstraint(fields=["token_hash"], name="invitation_token_hash_unique"),
            models.UniqueConstraint(fields=["text_token_hash"], name="invitation_text_token_hash_unique"),
        ]
        indexes = [
            models.Index(fields=["patient", "-created_at", "-id"], name="invitation_latest_idx"),
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
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    def is_expired(self, now: datetime.datetime) -> bool:
        """Same rule as `InvitationQuerySet.expired_as_of`, for one row."""
        return self.status == Status.EXPIRED or (self.is_open and self.expires_at <= now)

    def is_usable(self, now: datetime.datetime) -> bool:
        return self.is_open and self.expires_at > now

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


# The other models of the app live in their own modules: a practice's wording (template_models),
# delivery reports (tracking), bulk runs (bulk_models) and the dashboard's figures.
from .template_models import InvitationTemplate  # noqa: E402,F401
from .tracking import DeliveryReport  # noqa: E402,F401
from .bulk_models import BulkRun, BulkRunChunk  # noqa: E402,F401
from .dashboard_models import PracticeFigures  # noqa: E402,F401
