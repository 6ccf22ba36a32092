"""Twilio's webhooks for invitation texts: delivery statuses and patients' replies. Only Twilio's
signed POSTs get through (`core.sending.text_webhooks.twilio_webhook`: 404 without Twilio, 405,
403 unsigned or forged, and nothing stored); both are idempotent (a status moves a text only
forward; STOP and START set a list entry; a reply posted again is acted on once)."""

import random

from django.db import IntegrityError, transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from twilio.twiml.messaging_response import MessagingResponse

from core.sending.text_webhooks import twilio_webhook

from invitations.models import HandledReply
from invitations.texts import delivery, replies

CLEANUP_ONE_IN = 100


@twilio_webhook
def text_status(request: HttpRequest) -> HttpResponse:
    """StatusCallback: MessageSid, MessageStatus, ErrorCode; ?invitation=<public id>."""
    sid = (request.POST.get("MessageSid") or "").strip()
    status = (request.POST.get("MessageStatus") or "").strip()
    if not sid or not status:
        return JsonResponse({"error": "bad_request", "detail": "MessageSid and MessageStatus are required."}, status=400)
    delivery.record_status(
        public_id=request.GET.get("invitation", ""), sid=sid, status=status,
        error_code=request.POST.get("ErrorCode"), now=timezone.now(),
    )
    return HttpResponse(status=204)


@twilio_webhook
def reply(request: HttpRequest) -> HttpResponse:
    """A patient's reply to our number: From, Body (and OptOutType with Advanced Opt-Out)."""
    if not (request.POST.get("From") or "").strip():
        return JsonResponse({"error": "bad_request", "detail": "From is required."}, status=400)
    response = MessagingResponse()
    sid = (request.POST.get("MessageSid") or "").strip()[:64]
    now = timezone.now()
    # Marked as handled in the same transaction as its effect: a reply whose handling failed is
    # handled when Twilio posts it again; one handled already is not acted on or answered twice.
    with transaction.atomic():
        if sid:
            try:
                with transaction.atomic():
                    HandledReply.objects.create(message_sid=sid, handled_at=now)
            except IntegrityError:
                return HttpResponse(str(response), content_type="application/xml")
        answer = replies.handle_reply(request.POST, now=now)
    if sid and random.randrange(CLEANUP_ONE_IN) == 0:  # now and then, forget replies long past Twilio's retries
        HandledReply.objects.filter(handled_at__lt=now - HandledReply.KEEP_FOR).delete()
    if answer:
        response.message(answer)
    return HttpResponse(str(response), content_type="application/xml")
