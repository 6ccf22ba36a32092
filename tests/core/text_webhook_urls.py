"""Test-only URLs: two views behind `core.sending.text_webhooks.twilio_webhook`, recording what
reached them (the app's real views come with its own URLs)."""

from django.http import HttpResponse
from django.urls import path

from core.sending.text_webhooks import twilio_webhook

#: (view name, the form fields it was given), in the order they arrived.
RECEIVED: list[tuple[str, dict]] = []


@twilio_webhook
def status(request):
    RECEIVED.append(("status", request.POST.dict()))
    return HttpResponse(status=204)


@twilio_webhook
def inbound(request):
    RECEIVED.append(("inbound", request.POST.dict()))
    return HttpResponse("<Response/>", content_type="text/xml")


urlpatterns = [
    path("texts/status/", status, name="text-status"),
    path("texts/inbound/", inbound, name="text-inbound"),
]
