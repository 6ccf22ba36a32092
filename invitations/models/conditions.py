"""The rules of an invitation written as SQL conditions, once: when a link has run out, whose email
is still to go, who may be claimed for sending, when no channel is left. The single-row
transitions (`invitations.models.invitation`) and the batch transitions
(`invitations.models.batch_transitions`) both read them; so do eligibility, the patient status column
and the sweeps."""

import datetime

from django.conf import settings
from django.db.models import Q

from invitations.vocabulary import LIVE_TEXT, OPEN_STATUSES, Status

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
