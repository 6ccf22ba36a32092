from django.apps import AppConfig
from django.db.models.signals import post_migrate


class PatientsConfig(AppConfig):
    name = "patients"
    verbose_name = "Patients and practices"

    def ready(self) -> None:
        # Imported once the app registry is ready: they import models.
        from patients import roles, signals
        from patients.admin import system_status  # noqa: F401  (registers, connects receivers)
        from patients.staff_auth import admin as staff_auth_admin, sessions, two_factor  # noqa: F401  (registers, connects receivers)

        post_migrate.connect(roles.sync_role_groups, dispatch_uid="patients.sync_role_groups")
