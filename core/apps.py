from django.apps import AppConfig


class CoreConfig(AppConfig):
    """Shared infrastructure below the apps: the provider sending path (error classes, the shared
    rate limit, concurrent and batch sending). `patients`, `invitations` and `notifications`
    import it; it imports none of them."""

    name = "core"
    verbose_name = "Infrastructure"
