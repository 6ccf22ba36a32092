from django.apps import AppConfig


class InvitationsConfig(AppConfig):
    name = "invitations"
    verbose_name = "Portal invitations"

    def ready(self) -> None:
        # Imported once the app registry is ready (they import models).
        from patients import health

        from . import signals, tracking  # noqa: F401  (signals connects receivers)

        health.add_status_line(tracking.status_line)
