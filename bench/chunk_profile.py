"""Profile Activate Now's chunks in one process, on a database `bench/run.py` kept (run it without --drop).

    .venv/bin/python bench/chunk_profile.py bench_100000 [--chunks 4] [--top 25] [--children 0]

It puts the database back as it was before Activate Now ran (the run's invitations, their timeline
and the runs go; the older links those invitations replaced are the patients' latest again), starts
an Activate Now run for practice "Bench" (planned here, not enqueued), processes one chunk to warm up
(imports, the template, the connection), then processes `--chunks` chunks of 500 under cProfile: the
calling thread and the sending pool's threads, where the emails are built, each thread's CPU time (so
a thread waiting for the GIL or the database costs nothing there). For each chunk it prints
the wall time, this process's CPU time, the database's share (the time spent in its queries, measured
around each one) and the number of queries; then the functions that cost the most, by their own time
and cumulatively. It puts the database back again at the end, so two profiles start from the same data.

The email backend is the benchmark's (`bench/email_backend.py`: builds each message's MIME form, sends
nothing), as in `bench/run.py`'s Activate Now.
"""

import argparse
import cProfile
import io
import os
import pstats
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.run import DATABASE_PREFIX, POSTGRES, REDIS, bench_env  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("database", help=f"a database bench/run.py kept, e.g. {DATABASE_PREFIX}100000")
    parser.add_argument("--chunks", type=_positive, default=4, help="chunks profiled after the warm-up (default 4)")
    parser.add_argument("--top", type=_positive, default=25, help="functions listed in each table (default 25)")
    parser.add_argument("--output", help="also write the merged profile here (pstats format, for snakeviz and the like)")
    parser.add_argument("--plain", action="store_true", help="time the chunks without the profiler (its cost left out)")
    args = parser.parse_args()
    os.environ.update(bench_env(args.database))
    os.environ.setdefault("PORTAL_VAR_DIR", "/tmp/practice-portal-bench")
    import django

    django.setup()
    profile(args.chunks, top=args.top, output=args.output, plain=args.plain)


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"{value}: give 1 or more")
    return number


def reset(practice) -> None:
    """Activate Now's traces gone: its runs, its invitations and their timeline; the links those
    invitations replaced are their patients' latest again (one scan of the practice's invitations)."""
    from django.db import connection

    with connection.cursor() as cursor:
        for table in ("invitations_bulkrunchunk", "invitations_bulkruntick"):
            cursor.execute(f"DELETE FROM {table} WHERE run_id IN (SELECT id FROM invitations_bulkrun WHERE practice_id = %s)", [practice.pk])
        cursor.execute("DELETE FROM invitations_bulkrun WHERE practice_id = %s", [practice.pk])
        cursor.execute(
            "DELETE FROM invitations_invitationevent WHERE invitation_id IN "
            "(SELECT id FROM invitations_invitation WHERE practice_id = %s AND source = 'bulk')", [practice.pk],
        )
        cursor.execute("DELETE FROM invitations_invitation WHERE practice_id = %s AND source = 'bulk'", [practice.pk])
        cursor.execute(
            """
            UPDATE invitations_invitation SET is_latest = true WHERE id IN (
                SELECT DISTINCT ON (patient_id) id FROM invitations_invitation i
                WHERE practice_id = %s AND access_id IS NULL AND NOT EXISTS (
                    SELECT 1 FROM invitations_invitation l WHERE l.patient_id = i.patient_id AND l.is_latest)
                ORDER BY patient_id, created_at DESC, id DESC)
            """,
            [practice.pk],
        )
        for table in ("invitations_invitation", "invitations_invitationevent", "invitations_bulkrunchunk"):
            cursor.execute(f"VACUUM ANALYZE {table}")


class QueryTimer:
    """The time spent in the database's queries (measured around each) and how many; by statement
    (its first words) in `by_statement`, over every chunk timed."""

    by_statement: dict[str, list] = {}

    def __init__(self):
        self.seconds, self.queries = 0.0, 0

    def __call__(self, execute, sql, params, many, context):
        start = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            elapsed = time.perf_counter() - start
            self.seconds += elapsed
            self.queries += 1
            entry = self.by_statement.setdefault(" ".join(sql.split())[:90], [0, 0.0])
            entry[0] += 1
            entry[1] += elapsed


def profile(chunks: int, *, top: int, output: "str | None", plain: bool = False) -> None:
    import redis
    from django.db import connection
    from django.utils import timezone

    from core.sending import engine
    from invitations.bulk import chunks as chunk_module
    from invitations.bulk import runs
    from invitations.models.bulk_runs import BulkRunChunk
    from patients.models import Patient, Practice

    practice = Practice.objects.get(name="Bench")
    size = Patient.objects.filter(practice=practice).count()
    print(f"database {connection.settings_dict['NAME']}: practice Bench, {size:,} patients", flush=True)
    reset(practice)
    run = runs.start_run(practice=practice, now=timezone.now())
    redis.Redis.from_url(REDIS).flushdb()  # the chunks' tasks: no worker runs here
    ids = list(BulkRunChunk.objects.filter(run=run).order_by("number").values_list("pk", flat=True))
    print(f"Activate Now planned: {run.targeted:,} invitations in {len(ids)} chunks; profiling {chunks} after one", flush=True)
    if len(ids) < chunks + 1:
        raise SystemExit(f"only {len(ids)} chunks: ask for at most {len(ids) - 1}")

    # The pool threads build and hand over the emails: each runs under a profiler of its own.
    thread_profiles: list[cProfile.Profile] = []
    send_unit = engine._Run._send_unit

    def profiled_send_unit(self, unit, start_at):
        thread_profile = cProfile.Profile(time.thread_time)
        thread_profiles.append(thread_profile)
        return thread_profile.runcall(send_unit, self, unit, start_at)

    chunk_module.process_chunk(ids[0], now=timezone.now())  # the warm-up
    if not plain:
        engine._Run._send_unit = profiled_send_unit
    main_profile = cProfile.Profile(time.thread_time)
    rows = []
    try:
        for chunk_id in ids[1:chunks + 1]:
            timer = QueryTimer()
            wall, cpu = time.perf_counter(), time.process_time()
            with connection.execute_wrapper(timer):
                if not plain:
                    main_profile.enable()
                outcome = chunk_module.process_chunk(chunk_id, now=timezone.now())
                if not plain:
                    main_profile.disable()
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            size_of = BulkRunChunk.objects.get(pk=chunk_id).size
            rows.append((wall, cpu, timer.seconds, timer.queries, size_of))
            print(f"chunk {chunk_id}: {outcome}, {size_of} invitations: {wall * 1000:.0f} ms wall, {cpu * 1000:.0f} ms CPU "
                  f"(this process{'' if plain else ', profiled'}), {timer.seconds * 1000:.0f} ms in {timer.queries} queries", flush=True)
    finally:
        engine._Run._send_unit = send_unit
        reset(practice)
    per = [wall / n * 1000 for wall, _, _, _, n in rows]
    print(f"\nper invitation: {statistics.median(per):.3f} ms wall (median of {len(rows)} chunks{'' if plain else '; cProfile adds its own cost'}), "
          f"{statistics.median(cpu / n * 1000 for _, cpu, _, _, n in rows):.3f} ms CPU here, "
          f"{statistics.median(db / n * 1000 for _, _, db, _, n in rows):.3f} ms in queries; "
          f"{statistics.median(q for *_, q, _ in rows):.0f} queries a chunk", flush=True)
    print("\n-- queries by statement (all chunks profiled): count, total ms --", flush=True)
    for statement, (count, seconds) in sorted(QueryTimer.by_statement.items(), key=lambda item: -item[1][1])[:top]:
        print(f"{count:>5} {seconds * 1000:>8.0f}  {statement}", flush=True)
    if plain:
        return
    stats = pstats.Stats(main_profile)
    for thread_profile in thread_profiles:
        stats.add(thread_profile)
    if output:
        stats.dump_stats(output)
    stats.strip_dirs()
    for order in ("tottime", "cumulative"):
        stats.stream = io.StringIO()
        stats.sort_stats(order).print_stats(top)
        print(f"\n-- by {order} --\n" + stats.stream.getvalue().split("\n\n", 1)[-1].strip(), flush=True)


if __name__ == "__main__":
    main()
