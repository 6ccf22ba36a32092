"""Time the expiry sweep: 100,000 run-out links among 1,000,000 invitations (run by hand).

    .venv/bin/python bench/expiry_sweep.py [--total 1000000] [--due 100000]

Defaults to DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench. The first run gives each demo
patient (practices other than the Activate Now bench practice) one sent invitation (SQL, once);
every run then makes --due of them run out a minute ago, the rest valid for days, and times
`services.expire_due` (the beat task's body). The invitations are left in place for the next run.
"""

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/bench")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal_project.settings")
os.environ.setdefault("DJANGO_DEBUG", "false")
os.environ.setdefault("DJANGO_SECRET_KEY", "bench-only-secret-key-0123456789abcdefghijklmnop")
os.environ.setdefault("DJANGO_ALLOWED_HOSTS", "localhost")
os.environ.setdefault("PORTAL_VAR_DIR", "/tmp/practice-portal-bench")

import django  # noqa: E402

django.setup()

from django.db import connection  # noqa: E402
from django.utils import timezone  # noqa: E402

from invitations import services  # noqa: E402

BENCH_PRACTICE = "Bench Activate Now"


def ensure_invitations(total: int) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM invitations_invitation i JOIN patients_practice p ON p.id = i.practice_id WHERE p.name <> %s",
            [BENCH_PRACTICE],
        )
        have = cursor.fetchone()[0]
        if have >= total:
            return
        print(f"inserting {total - have:,} invitations ...", flush=True)
        cursor.execute(
            """
            INSERT INTO invitations_invitation (public_id, practice_id, patient_id, email, token_hash, status,
                revoke_reason, failure_reason, source, created_at, sent_at, expires_at, provider_message_id,
                failed_attempts, is_latest)
            SELECT gen_random_uuid(), pt.practice_id, pt.id, pt.email, md5(pt.id::text) || md5('bench' || pt.id::text),
                   'sent', '', '', 'manual', now() - interval '1 day', now() - interval '1 day', now() + interval '6 days',
                   '', 0, true
            FROM patients_patient pt JOIN patients_practice p ON p.id = pt.practice_id
            WHERE p.name <> %s
              AND NOT EXISTS (SELECT 1 FROM invitations_invitation i WHERE i.patient_id = pt.id)
            ORDER BY pt.id
            LIMIT %s
            """,
            [BENCH_PRACTICE, total - have],
        )


def make_due(due: int) -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "DELETE FROM invitations_invitationevent WHERE kind = 'expired' AND invitation_id IN "
            "(SELECT i.id FROM invitations_invitation i JOIN patients_practice p ON p.id = i.practice_id WHERE p.name <> %s)",
            [BENCH_PRACTICE],
        )
        cursor.execute(
            "UPDATE invitations_invitation i SET status = 'sent', ended_at = NULL, expires_at = now() + interval '6 days' "
            "FROM patients_practice p WHERE p.id = i.practice_id AND p.name <> %s AND (i.status = 'expired' OR i.expires_at <= now())",
            [BENCH_PRACTICE],
        )
        cursor.execute(
            "UPDATE invitations_invitation SET expires_at = now() - interval '1 minute' WHERE id IN "
            "(SELECT i.id FROM invitations_invitation i JOIN patients_practice p ON p.id = i.practice_id "
            " WHERE p.name <> %s AND i.status = 'sent' ORDER BY random() LIMIT %s)",
            [BENCH_PRACTICE, due],
        )
        for table in ("invitations_invitation", "invitations_invitationevent"):
            cursor.execute(f"VACUUM ANALYZE {table}")
        cursor.execute("SELECT count(*) FROM invitations_invitation")
        return cursor.fetchone()[0]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--total", type=int, default=1_000_000)
    parser.add_argument("--due", type=int, default=100_000)
    parser.add_argument("--batch-size", type=int, default=None, help="rows per batch (default: what the beat task uses)")
    args = parser.parse_args()
    ensure_invitations(args.total)
    total = make_due(args.due)
    start = time.perf_counter()
    if args.batch_size:
        from invitations.models import Invitation

        expired = Invitation.objects.all().expire_due(timezone.now(), batch_size=args.batch_size)
    else:
        expired = services.expire_due(now=timezone.now())
    elapsed = time.perf_counter() - start
    print(f"expiry sweep: {expired:,} of {total:,} invitations marked expired (with their events) in {elapsed:.2f} s"
          + (f" (batches of {args.batch_size:,})" if args.batch_size else ""))


if __name__ == "__main__":
    main()
