"""`manage.py compile_catalogs`: write each translation catalog's .mo from its .po in pure Python
(Django's `compilemessages` needs GNU gettext's msgfmt; see core.catalogs)."""

from django.core.management.base import BaseCommand

from core import catalogs


class Command(BaseCommand):
    help = "Compile locale/*/LC_MESSAGES/*.po into the .mo files Django reads, without GNU gettext."

    def handle(self, *args, **options):
        changed = catalogs.compile_all()
        for path in changed:
            self.stdout.write(f"compiled {path}")
        if not changed:
            self.stdout.write("every catalog is current")
