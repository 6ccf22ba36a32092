"""The text of an invitation: every change of `text_status` (and of the invitation's status that a
text brings) as one conditional UPDATE, for one row or a chunk's batch alike. Mixed into
`invitations.models.InvitationQuerySet`; the workflows around them are `invitations.texts.delivery`.

* claimed before it is sent: ``text_claimed_at`` and a fresh link's token hash, only while the
  text is pending, the link works and no worker holds it (`text_claimable`);
* marked when Twilio took it (``queued``), whatever arrived first: our mark or Twilio's callback;
* failed when Twilio refused it or could not deliver it; the invitation fails with it only when no
  other channel may still reach the patient (`fail_when_no_channel_left`);
* a status callback moves a text only forward (`EARLIER_THAN`), so a repeated or late one changes
  nothing and adds no second timeline entry;
* never sent once it may no longer be: a pending text whose number went on the opt-out list, whose
  patient withdrew text consent or whose practice turned texts off is failed with that reason
  (`fail_blocked_texts`, run before every claim and when any of the three changes). A text a worker
  already holds finishes (its claim came first); Twilio itself refuses a number that replied STOP.
"""

import datetime
from typing import Optional

from django.conf import settings
from django.db import models, transaction
from django.db.models import Exists, OuterRef, Q

from patients.models import SmsOptOut

from invitations.models import batch_sql
from invitations.models.events import EventKind, InvitationEvent
from invitations.vocabulary import EARLIER_THAN, LIVE_TEXT, OPEN_STATUSES, TEXT_TOKEN_BYTES, Status, TextStatus, hash_token, last_digits, new_token

#: A worker that claimed a text but never finished gives it up after this long.
TEXT_CLAIM_LEASE = datetime.timedelta(seconds=settings.PORTAL_SEND_CLAIM_LEASE_SECONDS)


def text_claimable(now: datetime.datetime) -> Q:
    """Its text is still to go, its link works, and no worker holds it: the text's claim rule."""
    return Q(by_text=True, text_status=TextStatus.PENDING, status__in=list(OPEN_STATUSES), expires_at__gt=now) & (
        Q(text_claimed_at__isnull=True) | Q(text_claimed_at__lte=now - TEXT_CLAIM_LEASE)
    )


#: Why a pending text may no longer be sent: (condition, the reason staff read), first match wins.
def _blocks() -> list[tuple[Q, str]]:
    opted_out = Exists(SmsOptOut.objects.filter(practice_id=OuterRef("practice_id"), phone=OuterRef("text_to")))
    return [
        (Q(practice__text_invitations_enabled=False), "Invitation texts were turned off for the practice; the text was not sent."),
        (Q(opted_out), "The number is on the practice's text opt-out list (it replied STOP); the text was not sent."),
        (Q(access__isnull=True, patient__sms_consent=False), "The patient withdrew consent to texts; the text was not sent."),
        (Q(access__isnull=False, access__representative__sms_consent=False),
         "The representative withdrew consent to texts; the text was not sent."),
        (Q(access__status__in=["ended", "revoked"]), "The representative's access ended; the text was not sent."),
    ]


class TextTransitions:
    """Queryset methods (mixed into InvitationQuerySet): the only writers of a text's state."""

    def fail_blocked_texts(self, now: datetime.datetime) -> list[int]:
        """Fail the pending texts of this queryset that may no longer be sent (module docstring),
        each with its reason; texts a worker holds are left to finish. Returns the rows failed."""
        unheld = Q(text_claimed_at__isnull=True) | Q(text_claimed_at__lte=now - TEXT_CLAIM_LEASE)
        pending = self.filter(unheld, by_text=True, text_status=TextStatus.PENDING, status__in=list(OPEN_STATUSES))
        blocked = Q(pk__in=[])
        for condition, _ in _blocks():
            blocked |= condition
        if not pending.filter(blocked).exists():  # the usual case: one query
            return []
        failed: dict[int, str] = {}
        for condition, reason in _blocks():
            for pk in pending.filter(condition).exclude(pk__in=list(failed)).values_list("pk", flat=True):
                failed[pk] = reason
        return self.fail_texts(list(failed.items()), now=now) if failed else []

    def claim_text(self, pk: int, now: datetime.datetime) -> Optional[str]:
        """Claim one invitation's text; its link's token, or None (sent, failed, held elsewhere)."""
        token = new_token(TEXT_TOKEN_BYTES)
        claimed = self.model.objects.filter(text_claimable(now), pk=pk).update(
            text_claimed_at=now, text_token_hash=hash_token(token), text_attempts=models.F("text_attempts") + 1
        )
        return token if claimed else None

    def claim_texts(self, now: datetime.datetime) -> list[tuple[models.Model, str]]:
        """Claim the text of every row of this queryset the claim rule allows, each with a new
        link: (invitation, token) for the rows this caller really claimed."""
        candidates = list(self.filter(text_claimable(now)))
        if not candidates:
            return []
        tokens = {}
        for invitation in candidates:
            tokens[invitation.pk] = new_token(TEXT_TOKEN_BYTES)
            invitation.text_token_hash = hash_token(tokens[invitation.pk])
            invitation.text_claimed_at = now
        self.model.objects.filter(text_claimable(now)).bulk_update(candidates, ["text_token_hash", "text_claimed_at"])
        hashes = [invitation.text_token_hash for invitation in candidates]
        ours = set(self.model.objects.filter(text_token_hash__in=hashes).values_list("pk", flat=True))
        return [(invitation, tokens[invitation.pk]) for invitation in candidates if invitation.pk in ours]

    def mark_texts_queued(self, sent: list[tuple[int, str]], *, now: datetime.datetime) -> list[int]:
        """Twilio took each (pk, its SID): the text is queued there and the invitation sent. Rows
        whose status callback came first keep its (later) state. Returns the rows marked."""
        if not sent:
            return []
        with transaction.atomic():
            changed = batch_sql.update_from_values(
                self.model, [(pk, sid[:40]) for pk, sid in sent], columns=["text_sid"],
                set_fields={"text_sent_at": now, "text_claimed_at": None}, where={"by_text": True},
                still=Q(text_sent_at__isnull=True, text_status__in=list(LIVE_TEXT)),  # never a text failed meanwhile
            )
            if not changed:
                return []
            # A status callback that came first recorded its state and its entry: no second one.
            queued = batch_sql.update_returning(
                self.model, self.model.objects.filter(pk__in=changed).values("pk"),
                set_fields={"text_status": TextStatus.QUEUED}, still=Q(text_status=TextStatus.PENDING),
            )
            self.model.objects.filter(pk__in=changed, status=Status.PENDING).update(status=Status.SENT)
            numbers = dict(self.model.objects.filter(pk__in=queued).values_list("pk", "text_to"))
            batch_sql.insert_rows(
                InvitationEvent, ["invitation", "kind", "at", "detail"],
                [(pk, EventKind.TEXT_QUEUED, now, f"To {last_digits(numbers.get(pk, ''))}") for pk in queued],
            )
        return changed

    def fail_texts(self, failed: list[tuple[int, str]], *, now: datetime.datetime) -> list[int]:
        """Twilio refused each (pk, why) text that was still to go; the invitation fails with it
        when no other channel is left. Returns the rows whose text failed."""
        if not failed:
            return []
        with transaction.atomic():
            changed = batch_sql.update_from_values(
                self.model, [(pk, why[:300]) for pk, why in failed], columns=["text_error"],
                set_fields={"text_status": TextStatus.FAILED, "text_claimed_at": None}, where={},
                still=Q(text_status=TextStatus.PENDING),
            )
            batch_sql.insert_rows(
                InvitationEvent, ["invitation", "kind", "at", "detail"],
                [(pk, EventKind.TEXT_FAILED, now, why[:300]) for pk, why in failed if pk in set(changed)],
            )
            self._fail_for_text(changed, now)
        return changed

    def release_texts(self, released: list[tuple[int, str]], *, now: datetime.datetime) -> None:
        """Give back the claims of texts not sent (a later attempt claims them with a new link);
        a "sending delayed" entry for each that met an error (`detail`)."""
        if not released:
            return
        with transaction.atomic():
            self.model.objects.filter(pk__in=[pk for pk, _ in released], text_status=TextStatus.PENDING).update(text_claimed_at=None)
            batch_sql.insert_rows(
                InvitationEvent, ["invitation", "kind", "at", "detail"],
                [(pk, EventKind.SEND_RETRY, now, f"Text: {detail}"[:300]) for pk, detail in released if detail],
            )

    def record_text_status(self, *, state: str, error: str, now: datetime.datetime, sid: str = "") -> list[int]:
        """A status callback for the rows of this queryset (one text): move it to `state` if it
        is earlier, with a timeline entry; an undelivered text may fail the invitation."""
        earlier = EARLIER_THAN.get(state)
        if not earlier:
            return []
        fields = {"text_status": state}
        if state == TextStatus.UNDELIVERED:
            fields.update(text_error=error[:300], text_claimed_at=None)
        with transaction.atomic():
            rows = self.filter(by_text=True, text_status__in=list(earlier))
            numbers = dict(rows.values_list("pk", "text_to"))
            if not numbers:
                return []
            changed = [pk for pk in numbers if self.model.objects.filter(pk=pk, text_status__in=list(earlier)).update(**fields)]
            if sid:  # the callback came before our own mark: remember the text's SID from it
                self.model.objects.filter(pk__in=changed, text_sid="").update(text_sid=sid[:40])
            kind = {
                TextStatus.QUEUED: EventKind.TEXT_QUEUED, TextStatus.SENT: EventKind.TEXT_SENT,
                TextStatus.DELIVERED: EventKind.TEXT_DELIVERED, TextStatus.UNDELIVERED: EventKind.TEXT_UNDELIVERED,
            }[state]
            # "Queued" reads the same whether our mark or Twilio's callback came first.
            detail = {pk: f"To {last_digits(numbers[pk])}" if state == TextStatus.QUEUED else error[:300] for pk in changed}
            batch_sql.insert_rows(InvitationEvent, ["invitation", "kind", "at", "detail"], [(pk, kind, now, detail[pk]) for pk in changed])
            if state == TextStatus.UNDELIVERED:
                self._fail_for_text(changed, now)
            else:  # Twilio has it, whatever our own mark says yet
                self.model.objects.filter(pk__in=changed, status=Status.PENDING).update(status=Status.SENT)
        return changed

    def _fail_for_text(self, pks: list[int], now: datetime.datetime) -> None:
        """The text of `pks` failed: the reason staff read is the text's when nothing else failed
        first (only while the invitation is open: a registered or revoked one has no failure to
        explain); the invitation fails when no channel is left."""
        if not pks:
            return
        self.model.objects.filter(pk__in=pks, failure_reason="", status__in=list(OPEN_STATUSES)).update(
            failure_reason=models.F("text_error")
        )
        self.model.objects.filter(pk__in=pks).fail_when_no_channel_left(now)
