"""Keep open links consistent with the chart and the opt-out lists, whatever saved them.

Signals rather than calls in the admin: a patient's email or the opt-out list also change
through imports, the shell and the patient's own email-preferences page, and every path must
revoke. (`QuerySet.update()` bypasses signals; code that updates emails in bulk must call
`services.revoke_for_contact_change` itself.)
"""

from anymail.signals import tracking
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models.signals import post_save
from django.dispatch import receiver
from django.utils import timezone

from patients.models import EmailOptOut, Patient, Practice, SmsOptOut

from invitations import services
from invitations.models import delivery_reports
from invitations.models import Invitation, TextStatus


@receiver(post_save, sender=Patient, dispatch_uid="invitations.patient_saved")
def patient_saved(sender, instance: Patient, created: bool, raw: bool = False, **kwargs) -> None:
    if created or raw:
        return
    services.revoke_for_contact_change(instance, now=timezone.now())
    if not instance.sms_consent:  # consent withdrawn: a text still waiting is not sent
        Invitation.objects.filter(patient_id=instance.pk).fail_blocked_texts(timezone.now())
    if instance.portal_user_id is not None:
        # Password resets go to the address on the chart.
        get_user_model().objects.filter(pk=instance.portal_user_id).exclude(email=instance.email).update(
            email=instance.email
        )


@receiver(post_save, sender=EmailOptOut, dispatch_uid="invitations.opt_out_saved")
def opt_out_saved(sender, instance: EmailOptOut, raw: bool = False, **kwargs) -> None:
    if raw:
        return
    services.revoke_for_opt_out(
        practice_id=instance.practice_id, email=instance.email, now=timezone.now(), actor=instance.created_by
    )


@receiver(post_save, sender=Practice, dispatch_uid="invitations.practice_saved")
def practice_saved(sender, instance: Practice, created: bool, raw: bool = False, **kwargs) -> None:
    if created or raw or instance.text_invitations_enabled:
        return
    # Texts turned off: the practice's texts still waiting are not sent.
    Invitation.objects.filter(practice_id=instance.pk, by_text=True, text_status=TextStatus.PENDING).fail_blocked_texts(timezone.now())


@receiver(post_save, sender=SmsOptOut, dispatch_uid="invitations.sms_opt_out_saved")
def sms_opt_out_saved(sender, instance: SmsOptOut, raw: bool = False, **kwargs) -> None:
    if raw:
        return
    services.revoke_for_text_opt_out(
        practice_id=instance.practice_id, phone=instance.phone, now=timezone.now(), actor=instance.created_by
    )


@receiver(tracking, dispatch_uid="invitations.delivery_report")
def delivery_report(sender, event, esp_name: str, **kwargs) -> None:
    """Delivery reports from the email service's webhook (mounted at /anymail/), each applied once."""
    now = timezone.now()
    with transaction.atomic():
        report = delivery_reports.store_once(
            provider=esp_name,
            event_id=delivery_reports.stable_event_id(
                event_id=event.event_id, event_type=event.event_type, message_id=event.message_id, timestamp=event.timestamp
            ),
            event_type=event.event_type,
            message_id=event.message_id,
            occurred_at=event.timestamp,
        )
        if report is None:
            return  # a duplicate delivery of an event already applied
        invitation = services.find_for_tracking(metadata=event.metadata, message_id=event.message_id, recipient=event.recipient)
        if invitation is None:
            report.outcome = "no matching invitation"
        else:
            report.invitation = invitation
            report.outcome = services.apply_tracking_event(
                invitation, event_type=event.event_type, description=event.description or event.reject_reason or "", now=now
            )
        report.save(update_fields=["invitation", "outcome"])
