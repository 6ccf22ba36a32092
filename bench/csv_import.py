"""Time a 10,000-row CSV import (validation preview + import) on the configured database.

    DATABASE_URL=postgres://.../bench DJANGO_DEBUG=1 python bench/csv_import.py [--rows 10000]
"""

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal_project.settings")
os.environ.setdefault("DJANGO_DEBUG", "1")

import django  # noqa: E402

django.setup()

from django.db import connection, transaction  # noqa: E402

from patients import imports  # noqa: E402
from patients.models import Practice  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=10_000)
    args = parser.parse_args()
    header = "chart_number,first_name,last_name,date_of_birth,zip_code,email,phone,birth_sex,email_consent,deceased\n"
    rows = "".join(
        f"BENCH-{i},First{i},Last{i},1980-01-01,02139,p{i}@example.com,555-0100,F,yes,no\n" for i in range(args.rows)
    )
    practice = Practice.objects.create(name="CSV benchmark practice")
    try:
        start = time.perf_counter()
        report = imports.validate_rows(practice=practice, text=header + rows)
        validated = time.perf_counter()
        with transaction.atomic():
            created = imports.import_valid_rows(report, practice=practice)
        done = time.perf_counter()
        print(f"database: {connection.vendor}; rows: {args.rows:,}; valid: {len(report.valid_rows):,}; created: {created:,}")
        print(f"preview (parse + validate): {validated - start:.2f} s; import: {done - validated:.2f} s; total: {done - start:.2f} s")
    finally:
        practice.patients.all().delete()
        practice.delete()


if __name__ == "__main__":
    main()
