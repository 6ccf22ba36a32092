from django.apps import AppConfig


class InvitationsConfig(AppConfig):
    name = "invitations"
    verbose_name = "Portal invitations"

    def ready(self) -> None:
        from . import signals  # noqa: F401  (connects receivers)
