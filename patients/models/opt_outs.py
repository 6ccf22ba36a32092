"""The practice's email and text opt-out lists: an address or a number the practice must not contact,
with why and who added it. Both lists share their shape (`OptOutEntry`)."""

from django.conf import settings
from django.db import models
from django.utils import timezone

from patients.models.patients import normalise_email
from patients.models.practices import PhoneReadInPracticeCountry, Practice


class OptOutEntry(models.Model):
    """What both opt-out lists hold besides the practice, the address or number and the reason: when
    and by whom it was added (nobody for the patient's own request or the provider's report).
    `contact_field` names the column that holds the address or number (unique per practice)."""

    created_at = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    contact_field: str = ""

    class Meta:
        abstract = True
        ordering = ["-created_at"]

    @property
    def contact(self) -> str:
        return getattr(self, self.contact_field)


class OptOutReason(models.TextChoices):
    PATIENT_REQUEST = "patient_request", "Patient asked to stop emails"
    SPAM_COMPLAINT = "spam_complaint", "Marked an email as spam"
    HARD_BOUNCE = "hard_bounce", "Address bounced permanently"
    STAFF = "staff", "Added by staff"


class EmailOptOutQuerySet(models.QuerySet):
    def matching(self, practice_id: int, email: str) -> "EmailOptOutQuerySet":
        return self.filter(practice_id=practice_id, email=normalise_email(email))


class EmailOptOut(OptOutEntry):
    """An address the practice must not email."""

    practice = models.ForeignKey(Practice, on_delete=models.CASCADE, related_name="email_opt_outs")
    email = models.EmailField()
    reason = models.CharField(max_length=20, choices=OptOutReason.choices, default=OptOutReason.STAFF)

    objects = EmailOptOutQuerySet.as_manager()
    contact_field = "email"

    class Meta(OptOutEntry.Meta):
        verbose_name = "email opt-out"
        constraints = [
            models.UniqueConstraint(
                fields=["practice", "email"],
                name="optout_unique_practice_email",
                violation_error_message="This address is already on the practice's opt-out list.",
            )
        ]

    def __str__(self) -> str:
        return f"{self.email} ({self.get_reason_display()})"

    def clean_fields(self, exclude=None) -> None:
        self.email = normalise_email(self.email)
        super().clean_fields(exclude=exclude)

    def save(self, *args, **kwargs) -> None:
        self.email = normalise_email(self.email)
        super().save(*args, **kwargs)


class SmsOptOutReason(models.TextChoices):
    STOP_REPLY = "stop_reply", "Patient replied STOP"
    PROVIDER = "provider", "The text service reports the patient opted out"
    STAFF = "staff", "Added by staff"


class SmsOptOutQuerySet(models.QuerySet):
    def matching(self, practice_id: int, phone: str) -> "SmsOptOutQuerySet":
        return self.filter(practice_id=practice_id, phone=phone)


class SmsOptOut(PhoneReadInPracticeCountry, OptOutEntry):
    """A mobile number the practice must not text (the patient replied STOP; START removes it)."""

    practice = models.ForeignKey(Practice, on_delete=models.CASCADE, related_name="sms_opt_outs")
    phone = models.CharField("mobile number", max_length=20, help_text="In international form, e.g. +16175550123.")
    reason = models.CharField(max_length=20, choices=SmsOptOutReason.choices, default=SmsOptOutReason.STAFF)

    objects = SmsOptOutQuerySet.as_manager()
    contact_field = "phone"
    phone_field = "phone"

    class Meta(OptOutEntry.Meta):
        verbose_name = "text opt-out"
        constraints = [
            models.UniqueConstraint(
                fields=["practice", "phone"],
                name="smsoptout_unique_practice_phone",
                violation_error_message="This number is already on the practice's text opt-out list.",
            )
        ]

    def __str__(self) -> str:
        # Admin messages and history show it: the number's last digits are enough there.
        return f"…{self.phone[-4:]} ({self.get_reason_display()})"
