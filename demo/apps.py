from django.apps import AppConfig


class DemoConfig(AppConfig):
    """Demo data for `bin/run` (`manage.py seed_demo`): practices, staff, patients, invitation
    history and payment-plan applications. Above every other app, as it fills them all."""

    name = "demo"
    verbose_name = "Demo data"
