from django.apps import AppConfig


class PortalConfig(AppConfig):
    """The patient's side: registration from a link, sign-in, the portal home, password reset,
    access requests and email preferences. No models: it works through `invitations` and
    `patients`, above both."""

    name = "portal"
    verbose_name = "Patient portal"
