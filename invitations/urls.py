from django.urls import path

from . import text_webhooks, views

app_name = "invitations"

urlpatterns = [
    path("invite/<str:token>/", views.register, name="register"),
    # The link in an invitation text: short, so the text stays one message.
    path("t/<str:token>/", views.register, name="register_text"),
    # Twilio's webhooks (signed; 404 unless SMS_PROVIDER=twilio).
    path("twilio/text-status/", text_webhooks.text_status, name="twilio_text_status"),
    path("twilio/replies/", text_webhooks.replies, name="twilio_replies"),
    path("practices/<int:practice_id>/request-access/", views.request_access, name="request_access"),
]
