"""The words of invitations: statuses, reasons, sources, channels and a text's states, and the
tokens of links (no model here, so the models, the eligibility rules and the text transitions
all read one vocabulary; `invitations.models` re-exports it)."""

import hashlib
import secrets

from django.db import models


#: A text's link carries a shorter token (192 bits, 32 characters) so the text stays one message.
TEXT_TOKEN_BYTES = 24


def new_token(nbytes: int = 32) -> str:
    """A fresh URL-safe token, 256 bits unless asked for fewer. Only its hash is ever stored."""
    return secrets.token_urlsafe(nbytes)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class Status(models.TextChoices):
    # The same words as a patient's portal status (invitations.patient_status): one vocabulary on
    # every page, filter, timeline and email to staff.
    PENDING = "pending", "Being sent"
    SENT = "sent", "Sent"
    ACCEPTED = "accepted", "Registered"
    EXPIRED = "expired", "Expired"
    REVOKED = "revoked", "Revoked"
    FAILED = "failed", "Failed"


OPEN_STATUSES = (Status.PENDING, Status.SENT)


class RevokeReason(models.TextChoices):
    RESENT = "resent", "Replaced by a new link (resent)"
    EMAIL_CHANGED = "email_changed", "The patient's email address changed"
    OPTED_OUT = "opted_out", "The address is on the opt-out list"
    TOO_MANY_ATTEMPTS = "too_many_attempts", "Too many failed attempts"
    STAFF = "staff", "Revoked by staff"
    REGISTERED = "registered", "The patient registered with another link"
    MOBILE_CHANGED = "mobile_changed", "The patient's mobile number changed"
    TEXT_OPTED_OUT = "text_opted_out", "The number replied STOP to texts"
    ACCESS_ENDED = "access_ended", "The representative's access ended or was revoked"


class Source(models.TextChoices):
    NEW_PATIENT = "new_patient", "New patient"
    MANUAL = "manual", "Manual"
    RESEND = "resend", "Resend"
    BULK = "bulk", "Activate Now"
    MONTHLY = "monthly", "Monthly re-invite"
    SELF_SIGNUP = "self_signup", "Patient asked for access"
    BULK_RESEND = "bulk_resend", "New links (selected patients)"
    CAME_OF_AGE = "came_of_age", "Came of age (parents' access ended)"




class Channel(models.TextChoices):
    EMAIL = "email", "Email"
    TEXT = "text", "Text message"


class SendBy(models.TextChoices):
    """What the front desk chooses when inviting one patient."""

    AUTO = "auto", "Email, or a text when email cannot be used"
    EMAIL = "email", "Email"
    TEXT = "text", "Text message"
    BOTH = "both", "Email and text message"


class TextStatus(models.TextChoices):
    """Where an invitation's text is, from Twilio's status callbacks. Only ever moves forward."""

    NONE = "", "No text"
    PENDING = "pending", "Waiting to be sent"
    QUEUED = "queued", "Queued at the text service"
    SENT = "sent", "Sent to the carrier"
    DELIVERED = "delivered", "Delivered"
    UNDELIVERED = "undelivered", "Not delivered"
    FAILED = "failed", "Failed"


#: A text that may still reach the patient (the invitation is not failed while one is live).
LIVE_TEXT = (TextStatus.PENDING, TextStatus.QUEUED, TextStatus.SENT, TextStatus.DELIVERED)
#: Our state for a Twilio MessageStatus (callbacks for other states only add nothing).
FROM_TWILIO = {
    "queued": TextStatus.QUEUED, "sending": TextStatus.SENT, "sent": TextStatus.SENT, "delivered": TextStatus.DELIVERED,
    "read": TextStatus.DELIVERED, "undelivered": TextStatus.UNDELIVERED, "failed": TextStatus.UNDELIVERED,
}
#: The states a text may still leave for each state a callback brings.
EARLIER_THAN = {
    TextStatus.QUEUED: (TextStatus.PENDING,),
    TextStatus.SENT: (TextStatus.PENDING, TextStatus.QUEUED),
    TextStatus.DELIVERED: (TextStatus.PENDING, TextStatus.QUEUED, TextStatus.SENT),
    TextStatus.UNDELIVERED: (TextStatus.PENDING, TextStatus.QUEUED, TextStatus.SENT),
}


def last_digits(phone: str) -> str:
    """How a number appears on timelines and in logs: its last four digits only."""
    return f"…{phone[-4:]}" if phone else ""


def created_detail(source: str, channels) -> str:
    """The timeline's words for a new invitation, single or bulk alike: "Manual (by email and text
    message)"."""
    named = " and ".join(Channel(channel).label.lower() for channel in channels)
    return f"{Source(source).label} (by {named})" if named else Source(source).label
