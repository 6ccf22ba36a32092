"""Twilio's webhooks for invitation texts (signed; 404 unless SMS_PROVIDER=twilio). The patient's
pages are `portal.urls`."""

from django.urls import path

from invitations.texts import webhooks

app_name = "invitations"

urlpatterns = [
    path("twilio/text-status/", webhooks.text_status, name="twilio_text_status"),
    path("twilio/replies/", webhooks.reply, name="twilio_replies"),
]
