from django.apps import AppConfig


class InvitationsConfig(AppConfig):
    name = "invitations"
    verbose_name = "Portal invitations"

    def ready(self) -> None:
        # Imported once the app registry is ready (they import models).
        from patients import health

        from invitations import signals  # noqa: F401  (connects its receivers)
        from invitations.models import delivery_reports

        health.add_status_line(delivery_reports.status_line)
