"""Twilio's webhooks for invitation texts: delivery statuses and patients' replies. Only Twilio's
signed POSTs get through (`core.sending.sms_webhooks.twilio_webhook`: 404 without Twilio, 405,
403 unsigned or forged, and nothing stored); both are idempotent (a status moves a text only
forward; STOP and START set a list entry)."""

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from twilio.twiml.messaging_response import MessagingResponse

from core.sending.sms_webhooks import twilio_webhook

from . import texts


@twilio_webhook
def text_status(request: HttpRequest) -> HttpResponse:
    """StatusCallback: MessageSid, MessageStatus, ErrorCode; ?invitation=<public id>."""
    sid = (request.POST.get("MessageSid") or "").strip()
    status = (request.POST.get("MessageStatus") or "").strip()
    if not sid or not status:
        return JsonResponse({"error": "bad_request", "detail": "MessageSid and MessageStatus are required."}, status=400)
    texts.record_status(
        public_id=request.GET.get("invitation", ""), sid=sid, status=status,
        error_code=request.POST.get("ErrorCode"), now=timezone.now(),
    )
    return HttpResponse(status=204)


@twilio_webhook
def replies(request: HttpRequest) -> HttpResponse:
    """A patient's reply to our number: From, Body (and OptOutType with Advanced Opt-Out)."""
    if not (request.POST.get("From") or "").strip():
        return JsonResponse({"error": "bad_request", "detail": "From is required."}, status=400)
    answer = texts.handle_reply(request.POST, now=timezone.now())
    response = MessagingResponse()
    if answer:
        response.message(answer)
    return HttpResponse(str(response), content_type="application/xml")
