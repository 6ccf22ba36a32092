"""An invitation's timeline: what happened to it, when and by whom (the audit trail staff read on
the patient's page). Written by the transitions of `invitations.models.Invitation`."""

from django.conf import settings
from django.db import models


class EventKind(models.TextChoices):
    CREATED = "created", "Created"
    SENT = "sent", "Sent"
    SEND_RETRY = "send_retry", "Sending delayed (will retry)"
    DELIVERED = "delivered", "Delivered"
    BOUNCED = "bounced", "Bounced"
    COMPLAINED = "complained", "Marked as spam"
    LINK_OPENED = "link_opened", "Opened the link"
    VERIFICATION_FAILED = "verification_failed", "Failed verification"
    ACCEPTED = "accepted", "Registered"
    EXPIRED = "expired", "Expired"
    REVOKED = "revoked", "Revoked"
    FAILED = "failed", "Failed"
    TEXT_QUEUED = "text_queued", "Text handed to the text service"
    TEXT_SENT = "text_sent", "Text sent to the carrier"
    TEXT_DELIVERED = "text_delivered", "Text delivered"
    TEXT_UNDELIVERED = "text_undelivered", "Text not delivered"
    TEXT_FAILED = "text_failed", "Text failed"


class InvitationEvent(models.Model):
    """One line of an invitation's timeline: the audit trail. Never holds health information."""

    # Found through invitation_event_idx (invitation, at); the actor only when a user is deleted.
    invitation = models.ForeignKey("invitations.Invitation", on_delete=models.CASCADE, related_name="events", db_index=False)
    kind = models.CharField(max_length=20, choices=EventKind.choices)
    at = models.DateTimeField()
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", db_index=False
    )
    detail = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["at", "id"]
        indexes = [models.Index(fields=["invitation", "at"], name="invitation_event_idx")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} at {self.at:%Y-%m-%d %H:%M}"
