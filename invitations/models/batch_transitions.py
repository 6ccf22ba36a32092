"""The batch transitions of invitations (a bulk run's chunk, the expiry sweep, a resend run): each
one statement, whatever the batch size, re-checked on every row so that a row another process
changed meanwhile keeps its state. Mixed into `invitations.models.invitation.InvitationQuerySet`
beside the text's own transitions (`invitations.models.text_transitions`); one row's transitions are
the methods of `Invitation`.

Each is atomic on its own, and inside a caller's transaction (a chunk's mark) part of it without a
savepoint of its own: none is meant to fail alone and be carried on from, and the savepoint's two
round trips to the database were a good part of a small mark."""

import datetime
import uuid
from typing import Optional

from django.db import models, transaction
from django.db.models import Q

from patients.models import Practice

from invitations.models import batch_sql
from invitations.models.conditions import claimable, email_unsent, no_channel_left, run_out
from invitations.models.events import EventKind, InvitationEvent
from invitations.vocabulary import (
    OPEN_STATUSES, TEXT_TOKEN_BYTES, Channel, RevokeReason, Status, TextStatus, created_detail, hash_token, new_token,
)


class BatchTransitions:
    def create_claimed_many(
        self, rows: list[tuple[int, str, str]], *, practice: Practice, source: str, actor_id: Optional[int], now: datetime.datetime,
        languages: Optional[dict[int, str]] = None,
    ) -> dict[int, tuple[int, Optional[str], uuid.UUID, Optional[str]]]:
        """`create_latest` for a batch, one INSERT (the caller holds the patients' row locks): the newest invitation
        of each (patient id, address or "", mobile number or ""), by email and/or text, each channel claimed for
        sending, in the patient's language ({patient id: code}), with a CREATED event each in a single invite's
        words (`vocabulary.created_detail`). Returns {patient id: (invitation id, email token, public id, text
        token)}, None for a channel not used."""
        if not rows:
            return {}
        with transaction.atomic(savepoint=False):
            self.model.objects.filter(batch_sql.AnyOf("patient_id", [pk for pk, _, _ in rows]), is_latest=True).update(is_latest=False)
            return self._insert_claimed(
                [(pk, pk, None, email, phone) for pk, email, phone in rows], practice=practice, source=source,
                actor_id=actor_id, now=now, languages=languages or {},
            )

    def create_claimed_for_representatives(
        self, rows: list[tuple[int, int, str, str]], *, practice: Practice, source: str, actor_id: Optional[int],
        now: datetime.datetime, languages: Optional[dict[int, str]] = None, details: Optional[dict[int, str]] = None,
    ) -> dict[int, tuple[int, Optional[str], uuid.UUID, Optional[str]]]:
        """`create_for_representative` for a batch, one INSERT (the caller holds the accesses' row locks): an
        invitation for each (access id, patient id, the representative's address or "", mobile number or ""),
        each channel claimed for sending, in the patient's language ({access id: code}); the patients' own
        invitations keep `is_latest`. Each CREATED event starts with `details` ({access id: "To Elena R.,
        parent or guardian: "}). Returns {access id: (invitation id, email token, public id, text token)}."""
        if not rows:
            return {}
        return self._insert_claimed(
            [(access_id, patient_id, access_id, email, phone) for access_id, patient_id, email, phone in rows],
            practice=practice, source=source, actor_id=actor_id, now=now, languages=languages or {}, details=details or {},
        )

    def _insert_claimed(
        self, rows: list[tuple[int, int, Optional[int], str, str]], *, practice: Practice, source: str,
        actor_id: Optional[int], now: datetime.datetime, languages: dict[int, str], details: Optional[dict[int, str]] = None,
    ) -> dict[int, tuple[int, Optional[str], uuid.UUID, Optional[str]]]:
        """One INSERT of claimed invitations and one of their CREATED events, for rows of (key, patient id,
        access id or None, email or "", mobile or ""); keyed by `key` (unique in the batch)."""
        details = details or {}
        public_ids, expires_at = {key: uuid.uuid4() for key, *_ in rows}, practice.link_expires_at(now)
        email_tokens = {key: new_token() for key, _, _, email, _ in rows if email}
        text_tokens = {key: new_token(TEXT_TOKEN_BYTES) for key, _, _, _, phone in rows if phone}
        keys_of = {public_ids[key]: key for key, *_ in rows}
        with transaction.atomic(savepoint=False):
            made = batch_sql.insert_rows(
                self.model,
                ["public_id", "practice", "patient", "access", "email", "token_hash", "status", "revoke_reason", "failure_reason",
                 "source", "created_by", "created_at", "sending_started_at", "send_attempts", "expires_at", "provider_message_id",
                 "failed_attempts", "is_latest", "by_email", "by_text", "text_to", "text_token_hash", "text_status", "text_claimed_at",
                 "language"],
                [(public_ids[key], practice.pk, patient_id, access_id, email, email and hash_token(email_tokens[key]) or None,
                  Status.PENDING, "", "", source, actor_id, now, now if email else None, 0, expires_at, "", 0, access_id is None,
                  bool(email), bool(phone), phone, phone and hash_token(text_tokens[key]) or None,
                  TextStatus.PENDING if phone else TextStatus.NONE, now if phone else None, languages.get(key, ""))
                 for key, patient_id, access_id, email, phone in rows],
                returning=["id", "public_id"],
            )
            made = [(invitation_id, keys_of[uuid.UUID(str(public_id))]) for invitation_id, public_id in made]
            channels = {key: [c for c, used in ((Channel.EMAIL, email), (Channel.TEXT, phone)) if used] for key, _, _, email, phone in rows}
            batch_sql.insert_rows(
                InvitationEvent, ["invitation", "kind", "at", "actor", "detail"],
                [(invitation_id, EventKind.CREATED, now, actor_id, details.get(key, "") + created_detail(source, channels[key]))
                 for invitation_id, key in made],
            )
        return {key: (invitation_id, email_tokens.get(key), public_ids[key], text_tokens.get(key)) for invitation_id, key in made}

    def claim_many(self, now: datetime.datetime) -> list[tuple[models.Model, str]]:
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
        with transaction.atomic(savepoint=False):
            changed = batch_sql.update_from_values(
                self.model, [(pk, message_id[:200]) for pk, message_id in sent], columns=["provider_message_id"],
                set_fields={"status": Status.SENT, "sent_at": now, "sending_started_at": None}, where={}, still=email_unsent(),
            )
            batch_sql.insert_rows(InvitationEvent, ["invitation", "kind", "at", "detail"], [(pk, EventKind.SENT, now, "") for pk in changed])
        return changed

    def fail_many(self, failed: list[tuple[int, str]], *, now: datetime.datetime) -> list[int]:
        """The email service refused the message, for each (pk, reason) whose email was still to
        go: its email has failed, and the invitation too unless its text may still arrive."""
        if not failed:
            return []
        with transaction.atomic(savepoint=False):
            changed = set(batch_sql.update_from_values(
                self.model, [(pk, reason[:300]) for pk, reason in failed], columns=["failure_reason"],
                set_fields={"email_failed_at": now, "sending_started_at": None}, where={}, still=email_unsent(),
            ))
            batch_sql.insert_rows(
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
        with transaction.atomic(savepoint=False):
            changed = batch_sql.update_returning(
                self.model, self.open().values("pk"),
                set_fields={"status": Status.REVOKED, "revoke_reason": reason, "ended_at": now, "sending_started_at": None},
                still=Q(status__in=list(OPEN_STATUSES)),
            )
            batch_sql.insert_rows(
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
        with transaction.atomic(savepoint=False):
            self.filter(email_unsent(), pk__in=[pk for pk, _ in released]).update(sending_started_at=None)
            batch_sql.insert_rows(
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
            with transaction.atomic(savepoint=False):
                changed = batch_sql.update_returning(
                    self.model, batch, set_fields={"status": Status.EXPIRED, "ended_at": now, "sending_started_at": None},
                    still=run_out(now),
                )
                batch_sql.insert_rows(InvitationEvent, ["invitation", "kind", "at", "detail"], [(pk, EventKind.EXPIRED, now, "") for pk in changed])
            total += len(changed)
            if not changed:
                return total
