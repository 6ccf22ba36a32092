from django.conf import settings
from django.conf.urls.static import static as media_patterns
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from django.http import HttpResponsePermanentRedirect
from django.templatetags.static import static
from django.views.generic import RedirectView

from core.sending.email_webhooks import tracking as tracking_webhook
from patients.staff_auth.views import StaffPasswordResetConfirmView, StaffPasswordResetView, staff_login, two_factor_page
from patients.views import healthz, practice_logo

admin.site.site_header = "Practice Portal"
admin.site.site_title = "Practice Portal"
admin.site.index_title = "Home"  # the page itself titles by role (templates/admin/index.html)

def favicon(request):
    # Resolved per request: the static files' manifest exists only after collectstatic, and the
    # URLconf must load before it (migrate, check).
    return HttpResponsePermanentRedirect(static("portal/favicon.ico"))


urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("favicon.ico", favicon),
    path(f"{settings.MEDIA_URL.strip('/')}/practice-logos/<str:name>", practice_logo, name="practice_logo"),
    path("", RedirectView.as_view(pattern_name="admin:index", permanent=False)),
    # Staff password reset: the admin login page shows "Forgotten your password?" when the
    # admin_password_reset URL exists.
    path("admin/password_reset/", StaffPasswordResetView.as_view(), name="admin_password_reset"),
    path("admin/login/", staff_login, name="staff_login"),
    path("admin/two-factor/", admin.site.admin_view(two_factor_page), name="staff_two_factor"),
    path(
        "admin/password_reset/done/",
        auth_views.PasswordResetDoneView.as_view(),
        name="password_reset_done",
    ),
    path(
        "admin/reset/<uidb64>/<token>/",
        StaffPasswordResetConfirmView.as_view(),
        name="password_reset_confirm",
    ),
    path(
        "admin/reset/done/",
        auth_views.PasswordResetCompleteView.as_view(),
        name="password_reset_complete",
    ),
    path("admin/", admin.site.urls),
    path("", include("invitations.urls")),
    path("", include("portal.urls")),
    # Delivery reports from the configured email provider only, behind ANYMAIL_WEBHOOK_SECRET.
    path("anymail/<str:provider>/tracking/", tracking_webhook, name="anymail_tracking"),
    path("api/payment-plans/", include("notifications.urls")),
]

if settings.DEBUG:
    urlpatterns += media_patterns(settings.MEDIA_URL, document_root=settings.MEDIA_ROOT)
