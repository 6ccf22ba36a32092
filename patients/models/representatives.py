"""Family and caregiver access as data: a representative (a parent or guardian, a court-appointed
guardian, an adult caregiver) is a person with a portal login of their own, never the patient's,
linked to each patient they act for by a `RepresentativeAccess`: the relationship, the level (full
or limited), who granted it and when, and when it ends (at the child's age of majority, at an end
date, or when revoked, with who revoked it and why).

One login can hold links to several patients (a family) and may also be a patient's own login.
Who may have an own account, and what a representative gets, follows the practice's age bands
(`Practice.age_band`): under `own_account_age` only representatives are invited; from it until
`adult_age` the patient may have an own account and representatives get the limited level unless
staff record a reason for full access; from `adult_age`, representatives only with the patient's
consent. Every change of an access's status goes through the methods below (one conditional
UPDATE each, so two processes never both end or revoke the same access).
"""

import datetime
from typing import Optional

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from core.phones import display_phone
from patients.models.practices import PhoneReadInPracticeCountry


class Relationship(models.TextChoices):
    PARENT = "parent", "Parent or guardian"
    COURT_GUARDIAN = "court_guardian", "Court-appointed guardian"
    CAREGIVER = "caregiver", "Adult caregiver"


class AccessLevel(models.TextChoices):
    FULL = "full", "Full access"
    LIMITED = "limited", "Limited access"


class AccessStatus(models.TextChoices):
    INVITED = "invited", "Invited, not linked yet"
    ACTIVE = "active", "Active"
    ENDED = "ended", "Ended"
    REVOKED = "revoked", "Revoked"


class EndReason(models.TextChoices):
    CAME_OF_AGE = "came_of_age", "The patient came of age"
    END_DATE = "end_date", "The end date passed"
    STAFF = "staff", "Revoked by staff"
    PATIENT = "patient", "Revoked by the patient"
    FAMILY_ACCESS_OFF = "family_access_off", "The practice turned family access off"


#: An access still in force or about to be (its representative may be invited or is linked).
LIVE_STATUSES = (AccessStatus.INVITED, AccessStatus.ACTIVE)


class Representative(PhoneReadInPracticeCountry, models.Model):
    """A person who acts for patients of one practice. Their own login (`portal_user`) is set when
    they first register from an invitation; the same login may represent people at several
    practices and may also be a patient's own login."""

    practice = models.ForeignKey("patients.Practice", on_delete=models.CASCADE, related_name="representatives")
    first_name = models.CharField(max_length=100)
    last_name = models.CharField(max_length=100)
    email = models.EmailField(blank=True)
    mobile_phone = models.CharField(
        "mobile phone", max_length=20, blank=True, default="",
        help_text="In international form once saved, e.g. +16175550123.",
    )
    sms_consent = models.BooleanField(
        "consented to text messages", default=False,
        help_text="The representative agreed to receive invitation texts at this number.",
    )
    portal_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="representing",
        editable=False, help_text="The representative's own portal login, once they registered.",
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", editable=False,
    )

    phone_field = "mobile_phone"

    class Meta:
        ordering = ["last_name", "first_name", "id"]
        indexes = [
            models.Index(fields=["practice", "email"], name="representative_email_idx"),
            models.Index(fields=["practice", "mobile_phone"], name="representative_mobile_idx"),
        ]

    def __str__(self) -> str:
        # Admin history and messages show it: a name, never contact details or whom they act for.
        return f"{self.first_name} {self.last_name[:1]}.".strip()

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()

    def contact_line(self, region: str) -> str:
        parts = [self.email] if self.email else []
        if self.mobile_phone:
            parts.append(display_phone(self.mobile_phone, region))
        return " · ".join(parts)


class AccessQuerySet(models.QuerySet):
    def live(self) -> "AccessQuerySet":
        return self.filter(status__in=LIVE_STATUSES)

    def in_force(self, now: datetime.datetime) -> "AccessQuerySet":
        """Active and not past its end date (the daily job may not have ended it yet): what a
        representative may open, checked on every portal request."""
        return self.filter(status=AccessStatus.ACTIVE).filter(Q(ends_at__isnull=True) | Q(ends_at__gt=now))

    def of_user(self, user) -> "AccessQuerySet":
        return self.filter(representative__portal_user=user)

    def end(self, *, reason: str, now: datetime.datetime, actor=None, note: str = "") -> list[int]:
        """Live -> ended (or revoked, for a revocation) for every row of this queryset still live,
        one UPDATE re-checked on each row; returns the ids this call changed (another process
        ending the same rows at the same moment gets none of them)."""
        status = AccessStatus.REVOKED if reason in (EndReason.STAFF, EndReason.PATIENT) else AccessStatus.ENDED
        ids = list(self.live().values_list("pk", flat=True))
        if not ids:
            return []
        changed = []
        for pk in ids:
            if RepresentativeAccess.objects.filter(pk=pk, status__in=LIVE_STATUSES).update(
                status=status, end_reason=reason, ended_at=now, ended_by=actor if getattr(actor, "pk", None) else None,
                end_note=note[:300],
            ):
                changed.append(pk)
        return changed


class RepresentativeAccess(models.Model):
    """One representative's access to one patient's portal."""

    practice = models.ForeignKey("patients.Practice", on_delete=models.CASCADE, related_name="representative_accesses")
    patient = models.ForeignKey("patients.Patient", on_delete=models.CASCADE, related_name="representative_accesses")
    representative = models.ForeignKey(Representative, on_delete=models.CASCADE, related_name="accesses")
    relationship = models.CharField(max_length=20, choices=Relationship.choices)
    level = models.CharField(max_length=10, choices=AccessLevel.choices, default=AccessLevel.FULL)
    full_access_reason = models.CharField(
        "reason for full access", max_length=300, blank=True, default="",
        help_text="Required for full access to a teenager's portal (the default there is limited).",
    )
    patient_consent = models.CharField(
        "patient's consent", max_length=300, blank=True, default="",
        help_text="For an adult patient: how the patient consented (e.g. signed form on file, 3/2/2026).",
    )
    court_document = models.CharField(
        "court document", max_length=300, blank=True, default="",
        help_text="For a court-appointed guardian: the order on file (name, number, date).",
    )
    status = models.CharField(max_length=10, choices=AccessStatus.choices, default=AccessStatus.INVITED)
    granted_at = models.DateTimeField(default=timezone.now)
    granted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        help_text="The staff member, or the patient's own login when an adult granted it from the portal.",
    )
    granted_by_patient = models.BooleanField(default=False)
    #: Parents' and guardians' access to a minor ends when the patient reaches the practice's adult
    #: age (the daily job); a caregiver's access may have an end date; a court-appointed
    #: guardian's has none.
    ends_at_majority = models.BooleanField(default=False)
    ends_at = models.DateTimeField("ends", null=True, blank=True)
    linked_at = models.DateTimeField(null=True, blank=True, editable=False)
    ended_at = models.DateTimeField(null=True, blank=True, editable=False)
    end_reason = models.CharField(max_length=20, choices=EndReason.choices, blank=True, default="", editable=False)
    end_note = models.CharField(max_length=300, blank=True, default="", editable=False)
    ended_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", editable=False,
    )
    #: The reminder to the patient that a caregiver's access ends soon, claimed once.
    reminded_at = models.DateTimeField(null=True, blank=True, editable=False)
    #: The patient was told (and invited to their own account) after coming of age: claimed once
    #: per patient, on the first of their parents' accesses that ended.
    patient_notified_at = models.DateTimeField(null=True, blank=True, editable=False)

    objects = AccessQuerySet.as_manager()

    class Meta:
        ordering = ["-granted_at", "-id"]
        verbose_name = "representative's access"
        verbose_name_plural = "representatives' access"
        constraints = [
            models.UniqueConstraint(
                fields=["representative", "patient"], condition=Q(status__in=["invited", "active"]),
                name="representative_access_one_live",
                violation_error_message="This representative already has access to this patient.",
            ),
        ]
        indexes = [
            models.Index(fields=["patient", "status"], name="representative_access_patient"),
            models.Index(fields=["ends_at"], condition=Q(status="active"), name="representative_access_ends"),
        ]

    def __str__(self) -> str:
        return f"{self.get_relationship_display()}: {self.representative} ({self.get_status_display()})"

    @property
    def is_live(self) -> bool:
        return self.status in LIVE_STATUSES

    def is_in_force(self, now: datetime.datetime) -> bool:
        return self.status == AccessStatus.ACTIVE and (self.ends_at is None or self.ends_at > now)

    def activate(self, now: datetime.datetime) -> bool:
        """Invited -> active when the representative links their login (once)."""
        changed = RepresentativeAccess.objects.filter(pk=self.pk, status=AccessStatus.INVITED).update(
            status=AccessStatus.ACTIVE, linked_at=now,
        )
        if changed:
            self.status, self.linked_at = AccessStatus.ACTIVE, now
        return bool(changed)

    def end(self, *, reason: str, now: datetime.datetime, actor=None, note: str = "") -> bool:
        changed = RepresentativeAccess.objects.filter(pk=self.pk).end(reason=reason, now=now, actor=actor, note=note)
        if changed:
            self.refresh_from_db()
        return bool(changed)


def ends_soon(now: datetime.datetime, within: datetime.timedelta) -> Q:
    """An active access with an end date within `within` whose patient was not reminded yet."""
    return Q(status=AccessStatus.ACTIVE, ends_at__gt=now, ends_at__lte=now + within, reminded_at__isnull=True)


def access_for(user, patient_id: int, now: datetime.datetime) -> Optional[RepresentativeAccess]:
    """The access in force that lets `user` open `patient_id`'s portal as a representative, if any."""
    if not getattr(user, "pk", None):
        return None
    return (
        RepresentativeAccess.objects.in_force(now).of_user(user).filter(patient_id=patient_id)
        .select_related("patient__practice", "representative").order_by("level", "-granted_at").first()  # "full" before "limited"
    )


class NoticeKind(models.TextChoices):
    ENDED_TO_REPRESENTATIVE = "ended_representative", "Access ended: told the representative"
    ENDED_TO_PATIENT = "ended_patient", "Came of age: told the patient"
    ENDS_SOON_TO_PATIENT = "ends_soon", "Access ends soon: reminded the patient"


class AccessNotice(models.Model):
    """One notice about an access, sent at most once: the row is inserted (the unique constraint is
    the claim) before the email goes, so a task delivered twice sends nothing the second time."""

    access = models.ForeignKey(RepresentativeAccess, on_delete=models.CASCADE, related_name="notices")
    kind = models.CharField(max_length=24, choices=NoticeKind.choices)
    to = models.EmailField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)
    failure = models.CharField(max_length=300, blank=True, default="")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["access", "kind"], name="access_notice_once")]

    def __str__(self) -> str:
        return self.get_kind_display()
