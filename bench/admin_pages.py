"""Time admin pages on a large database (run by hand; see README "Benchmarks").

    DATABASE_URL=postgres://.../bench DJANGO_DEBUG=1 python bench/admin_pages.py [--repeat 5]

Needs data first: python manage.py seed_demo --patients 500000 (two practices: 1,000,000 patients).
Prints, per page: median wall time over the repeats and the number of SQL queries.
"""

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal_project.settings")
os.environ.setdefault("DJANGO_DEBUG", "1")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.db import connection, reset_queries  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402

from patients.models import Patient  # noqa: E402

PAGES = [
    ("patient list", "/admin/patients/patient/"),
    ("patient list, page 200", "/admin/patients/patient/?p=200"),
    ("search last name prefix", "/admin/patients/patient/?q=Smi"),
    ("search chart number", "/admin/patients/patient/?q=01-0012345"),
    ("search date of birth", "/admin/patients/patient/?q=1980-05-17"),
    ("filter no consent", "/admin/patients/patient/?email_consent__exact=0"),
    ("filter registered", "/admin/patients/patient/?portal=yes"),
]
EXTRA_PAGES: list[tuple[str, str]] = [  # later features append theirs
    ("portal dashboard, practice 1", "/admin/invitations/bulkrun/portal/1/"),
    ("portal dashboard, recomputed", "/admin/invitations/bulkrun/portal/1/?refresh=1"),
    ("Activate Now preview, pract. 1", "/admin/invitations/bulkrun/portal/1/activate/"),
    ("patients not invited, pract. 1", "/admin/patients/patient/?practice__id__exact=1&portal_status=not_invited&portal=no"),
    ("why no invite: no consent", "/admin/patients/patient/?practice__id__exact=1&no_invite=no_consent"),
    ("bulk runs list", "/admin/invitations/bulkrun/"),
]


def measure(client: Client, url: str, repeat: int) -> tuple[float, int, int]:
    times = []
    queries = 0
    status = 0
    for _ in range(repeat):
        with CaptureQueriesContext(connection) as ctx:
            start = time.perf_counter()
            response = client.get(url, HTTP_HOST="localhost")
            times.append(time.perf_counter() - start)
        queries, status = len(ctx), response.status_code
    return statistics.median(times), queries, status


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--users", default="admin,frontdesk")
    args = parser.parse_args()
    settings.ALLOWED_HOSTS.append("localhost")
    total = Patient.objects.count()
    print(f"database: {connection.vendor}, patients: {total:,}")
    print(f"{'user':<10} {'page':<28} {'median ms':>10} {'queries':>8} status")
    for username in args.users.split(","):
        client = Client()
        client.force_login(get_user_model().objects.get(username=username))
        for label, url in PAGES + EXTRA_PAGES:
            seconds, queries, status = measure(client, url, args.repeat)
            print(f"{username:<10} {label:<28} {seconds * 1000:>10.1f} {queries:>8} {status}")
        reset_queries()


if __name__ == "__main__":
    main()
