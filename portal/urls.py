"""The patient's side: registration links at the site's root (short, for texts), "Request portal
access" per practice, and the portal itself under /portal/."""

from django.contrib.auth import views as auth_views
from django.urls import path

from portal import language, records
from portal.pages import access_requests, account, family, home, registration

app_name = "portal"

urlpatterns = [
    path("invite/<str:token>/", registration.register, name="register"),
    # The link in an invitation text: short, so the text stays one message.
    path("t/<str:token>/", registration.register, name="register_text"),
    path("practices/<int:practice_id>/request-access/", access_requests.access_request_page, name="request_access"),
    path("portal/", home.home, name="home"),
    path("portal/language/", language.switch_language, name="language"),
    path("portal/email-preferences/", home.email_preferences, name="email_preferences"),
    path("portal/switch/", records.switch, name="switch"),
    path("portal/caregivers/", family.caregivers, name="caregivers"),
    path("portal/caregivers/<int:access_id>/revoke/", family.revoke_caregiver, name="revoke_caregiver"),
    path("portal/login/", account.PortalLoginView.as_view(), name="login"),
    path("portal/logout/", account.PortalLogoutView.as_view(), name="logout"),
    path("portal/password-reset/", account.PortalPasswordResetView.as_view(), name="password_reset"),
    path(
        "portal/password-reset/sent/",
        auth_views.PasswordResetDoneView.as_view(template_name="portal/password_reset_done.html"),
        name="password_reset_done",
    ),
    path("portal/reset/<uidb64>/<token>/", account.PortalPasswordResetConfirmView.as_view(), name="password_reset_confirm"),
    path(
        "portal/reset/done/",
        auth_views.PasswordResetCompleteView.as_view(template_name="portal/password_reset_complete.html"),
        name="password_reset_complete",
    ),
]
