"""The staff audit trail: who did what, in which practice, when.

Every staff action that changes what patients receive is recorded here: invitations sent, resent
and revoked, Activate Now runs, template edits, practice setting changes, CSV imports, opt-out
changes and team changes. Entries carry ids, counts and setting names, never health information,
and are shown per practice and per patient in the admin (practice-scoped like everything else).
"""

from typing import Any, Iterable, Optional

from django.conf import settings
from django.db import models
from django.utils import timezone


class AuditAction(models.TextChoices):
    INVITE = "invite", "Invitation sent"
    RESEND = "resend", "Invitation resent"
    REVOKE = "revoke", "Invitation revoked"
    ACTIVATE_NOW = "activate_now", "Activate Now started"
    TEMPLATE_EDIT = "template_edit", "Invitation template edited"
    PRACTICE_SETTINGS = "practice_settings", "Practice settings changed"
    CSV_IMPORT = "csv_import", "Patients imported from CSV"
    OPT_OUT_ADDED = "opt_out_added", "Address added to the opt-out list"
    OPT_OUT_REMOVED = "opt_out_removed", "Address removed from the opt-out list"
    MEMBER_ADDED = "member_added", "Team member added"
    MEMBER_CHANGED = "member_changed", "Team member's role changed"
    MEMBER_REMOVED = "member_removed", "Team member removed"
    PATIENT_ADDED = "patient_added", "Patient added"
    PATIENT_CHANGED = "patient_changed", "Patient details changed"
    REPRESENTATIVE_GRANTED = "representative_granted", "Representative given access"
    REPRESENTATIVE_LINKED = "representative_linked", "Representative linked their login"
    REPRESENTATIVE_REVOKED = "representative_revoked", "Representative's access revoked"
    REPRESENTATIVE_ENDED = "representative_ended", "Representative's access ended"
    REPRESENTATIVE_VISIT = "representative_visit", "Representative opened the patient's portal"


class AuditEntry(models.Model):
    practice = models.ForeignKey("patients.Practice", on_delete=models.CASCADE, related_name="audit_entries")
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    action = models.CharField(max_length=30, choices=AuditAction.choices)
    patient = models.ForeignKey(
        "patients.Patient", null=True, blank=True, on_delete=models.SET_NULL, related_name="audit_entries"
    )
    summary = models.CharField(max_length=300)
    details = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "audit entry"
        verbose_name_plural = "audit trail"
        indexes = [
            models.Index(fields=["practice", "-created_at"], name="audit_practice_idx"),
            models.Index(fields=["patient", "-created_at"], name="audit_patient_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.get_action_display()} ({self.created_at:%Y-%m-%d %H:%M})"


def record(
    *,
    practice_id: int,
    actor: Any,
    action: str,
    summary: str,
    patient_id: Optional[int] = None,
    details: Optional[dict] = None,
    now=None,
) -> AuditEntry:
    return AuditEntry.objects.create(
        practice_id=practice_id,
        actor=actor if getattr(actor, "pk", None) else None,
        action=action,
        patient_id=patient_id,
        summary=summary[:300],
        details=details or {},
        created_at=now or timezone.now(),
    )


def record_many(
    *, actor: Any, action: str, rows: Iterable[tuple[int, Optional[int], str]], details: Optional[dict] = None
) -> int:
    """Bulk version for actions on many patients: rows of (practice_id, patient_id, summary)."""
    now = timezone.now()
    actor = actor if getattr(actor, "pk", None) else None
    entries = [
        AuditEntry(practice_id=practice_id, patient_id=patient_id, actor=actor, action=action, summary=summary[:300], details=details or {}, created_at=now)
        for practice_id, patient_id, summary in rows
    ]
    AuditEntry.objects.bulk_create(entries, batch_size=1000)
    return len(entries)


def describe_changes(form, *, with_values: bool) -> tuple[str, dict]:
    """Names of the fields a ModelForm changed and, for settings (never patient data), their new values."""
    changed = list(form.changed_data)
    values = {}
    for name in changed if with_values else ():
        value = form.cleaned_data.get(name)
        if isinstance(value, (bool, int, str)) or value is None:
            values[name] = value
        else:
            values[name] = str(value)
    labels = ", ".join(str(form.fields[name].label or name).lower() for name in changed if name in form.fields)
    return labels, values
