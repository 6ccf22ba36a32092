"""Twilio's webhooks for invitation texts: delivery statuses and patients' replies. Only Twilio's
signed POSTs get through (`core.sending.text_webhooks.twilio_webhook`: 404 without Twilio, 405,
403 unsigned or forged, and nothing stored); both are idempotent (a status moves a text only
forward; STOP and START set a list entry; a reply posted again is answered once)."""

from django.core.cache import cache
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from twilio.twiml.messaging_response import MessagingResponse

from core.sending.text_webhooks import twilio_webhook

from invitations.texts import delivery, replies


#: A reply Twilio posts again (it retries a webhook that failed or timed out) within this long is
#: recognised by its MessageSid and not answered twice.
REPLY_SEEN_SECONDS = 24 * 3600


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
    sid = (request.POST.get("MessageSid") or "").strip()
    if sid and not cache.add(f"portal:twilio-reply:{sid}", True, timeout=REPLY_SEEN_SECONDS):
        return HttpResponse(str(response), content_type="application/xml")  # Twilio retried it: answered once
    answer = replies.handle_reply(request.POST, now=timezone.now())
    if answer:
        response.message(answer)
    return HttpResponse(str(response), content_type="application/xml")
