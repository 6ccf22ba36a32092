"""The benchmark suite in one command (run by hand; the README records its results).

    .venv/bin/python bench/run.py [--sizes 100000,1000000] [--naive 1000] [--concurrency 2]
    .venv/bin/python bench/run.py --texts          # only the text scenarios (bench/texts.py), a few minutes

Needs the PostgreSQL and Redis of the machine (BENCH_POSTGRES_URL, default
postgres://postgres@127.0.0.1:5432; BENCH_REDIS_URL, default redis://127.0.0.1:6379/7, which is
flushed). For each size it makes a fresh database `bench_<size>`, migrates it and generates:

* practice "Bench" with <size> patients: the first min(size, 100,000) are invitable and never
  invited (Activate Now's targets); the rest are a mix a practice really has: 30 % registered (an
  accepted invitation and an older expired one), 25 % with a link out, 15 % whose link expired,
  5 % failed, and 5 % each with no email, no consent, an opted-out address, deceased and no date
  of birth; invitations and their timeline events spread over the last year;
* practice "Other" with size/20 patients of the same mix (so scoping has something to hide);
* practice "Naive" with --naive invitable patients.

Then it prints:

1. the naive loop: one `services.invite` + send at a time in this process (django-invitations
   style) over practice "Naive", and what 100,000 would take at that rate;
2. Activate Now end to end through the admin: the preview page, the confirm request, and the
   time until every targeted invitation is created and handed to the email backend by a real
   Celery worker (prefork, --concurrency processes, started here); invitations per second, the
   ratio to the naive loop, and the worker's peak memory (VmHWM of each of its processes);
3. the expiry sweep: 100,000 of the run's links made to run out together (as they do a week
   after a real run), then `services.expire_due`, the beat task's body;
4. the dashboard figures' recount (the background job behind the dashboard and the preview),
   then admin pages as a superuser and as Bench's practice admin: median of 3, query counts.

The email backend (bench/email_backend.py) builds every message's MIME form and sends nothing.
A table for the README is printed at the end. The databases are left for inspection (--drop).

`--children 0.2` makes a fifth of Activate Now's targets children too young for their own account (3 to
10 years old, spread evenly over the chunks), each with a parent on file (generated in SQL; two
siblings share one), so the run invites them through their parents.

`--texts` runs Activate Now by text message through the Twilio stand-in under a 1 text/s and a 30
texts/s limit (bench/texts.py, database `bench_texts`); alone it runs only those (add --sizes or
--providers to run those too).
"""

import argparse
import dataclasses
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
POSTGRES = os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432")
REDIS = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/7")
#: The databases' names start with this (two benches on one server at once need different ones).
DATABASE_PREFIX = os.environ.get("BENCH_DATABASE_PREFIX", "bench_")
ACTIVATE_TARGET = 100_000


def bench_env(database: str) -> dict[str, str]:
    return {
        "DJANGO_SETTINGS_MODULE": "portal_project.settings",
        "DATABASE_URL": f"{POSTGRES}/{database}",
        "CELERY_BROKER_URL": REDIS,
        "EMAIL_BACKEND": "bench.email_backend.EmailBackend",
        "DJANGO_DEBUG": "false",
        "DJANGO_SECRET_KEY": "bench-only-secret-key-0123456789abcdefghijklmnop",
        "DJANGO_ALLOWED_HOSTS": "testserver,localhost",
        "DJANGO_SECURE_SSL_REDIRECT": "false",
        "DJANGO_SECURE_COOKIES": "false",
        "PORTAL_VAR_DIR": os.environ.get("PORTAL_VAR_DIR", "/tmp/practice-portal-bench"),
        "LOG_LEVEL": "WARNING",
    }


# == the parent: one child process per size, then the table ==================================


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default=None, type=_sizes,
                        help="patients per database, comma-separated, each 1 or more (default 100000,1000000; \"\" for none)")
    parser.add_argument("--naive", type=_whole(0, ACTIVATE_TARGET), default=1000,
                        help=f"invitations made by the one-at-a-time loop, 0 (not measured) to {ACTIVATE_TARGET:,}")
    parser.add_argument("--concurrency", type=_whole(1, 64), default=2, help="worker processes, 1 to 64")
    parser.add_argument("--drop", action="store_true", help="drop each database at the end")
    parser.add_argument("--spanish", type=_share, default=0.0,
                        help="share of Bench's patients who prefer Spanish, 0 to 1 (README: Activate Now half in Spanish)")
    parser.add_argument("--children", type=_share, default=0.0,
                        help="share of Activate Now's targets who are children too young for their own account, 0 to 1, "
                             "each invited through a parent on file (two siblings share one)")
    parser.add_argument("--providers", default=None, type=_scenarios("providers"),
                        help="provider scenarios to run after the sizes: all (default), none, or numbers from 1 (comma-separated)")
    parser.add_argument("--texts", nargs="?", const="all", default=None, type=_scenarios("texts"),
                        help="text scenarios (bench/texts.py): all, or numbers from 1; alone, only these run")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # the child's mode
    parser.add_argument("--providers-child", help=argparse.SUPPRESS)
    parser.add_argument("--texts-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        results = run_one(args.one, naive=args.naive, concurrency=args.concurrency, spanish=args.spanish, children=args.children)
        print("RESULT " + json.dumps(results), flush=True)
        return
    if args.providers_child:
        run_providers(args.providers_child, concurrency=args.concurrency)
        return
    if args.texts_child:
        run_texts(args.texts_child, concurrency=args.concurrency)
        return
    if args.sizes is None:
        args.sizes = [] if args.texts else [100_000, 1_000_000]
    if args.providers is None:
        args.providers = "none" if args.texts else "all"

    sizes = args.sizes
    collected = []
    for size in sizes:
        database = f"{DATABASE_PREFIX}{size}"
        recreate_database(database)
        print(f"\n== {size:,} patients (database {database}) ==", flush=True)
        child = subprocess.Popen(
            [sys.executable, __file__, "--one", str(size), "--naive", str(args.naive),
             "--concurrency", str(args.concurrency), "--spanish", str(args.spanish), "--children", str(args.children)],
            cwd=ROOT, env={**os.environ, **bench_env(database)}, stdout=subprocess.PIPE, text=True,
        )
        result = None
        for line in child.stdout:
            if line.startswith("RESULT "):
                result = json.loads(line[7:])
            else:
                print(line, end="", flush=True)
        if child.wait() != 0 or result is None:
            raise SystemExit(f"the {size:,} benchmark failed (exit {child.returncode})")
        collected.append(result)
        if args.drop:
            drop_database(database)
    if collected:
        print_table(collected)
    if args.providers != "none":
        database = f"{DATABASE_PREFIX}providers"
        recreate_database(database)
        print(f"\n== provider scenarios (database {database}) ==", flush=True)
        child = subprocess.run(
            [sys.executable, __file__, "--providers-child", args.providers, "--concurrency", str(args.concurrency)],
            cwd=ROOT, env={**os.environ, **bench_env(database)},
        )
        if args.drop:
            drop_database(database)
        if child.returncode != 0:
            raise SystemExit(f"the provider scenarios failed (exit {child.returncode})")
    if args.texts and args.texts != "none":
        database = f"{DATABASE_PREFIX}texts"
        recreate_database(database)
        print(f"\n== text scenarios (database {database}) ==", flush=True)
        child = subprocess.run(
            [sys.executable, __file__, "--texts-child", args.texts, "--concurrency", str(args.concurrency)],
            cwd=ROOT, env={**os.environ, **bench_env(database)},
        )
        if args.drop:
            drop_database(database)
        if child.returncode != 0:
            raise SystemExit(f"the text scenarios failed (exit {child.returncode})")


def _whole(low: int, high: int):
    def parse(value: str) -> int:
        try:
            number = int(value.replace("_", ""))
        except ValueError:
            raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
        if not low <= number <= high:
            raise argparse.ArgumentTypeError(f"{number:,} is out of range: give {low:,} to {high:,}")
        return number

    return parse


def _sizes(value: str) -> list[int]:
    parse = _whole(1, 100_000_000)
    return [parse(size.strip()) for size in value.split(",") if size.strip()]


def _share(value: str) -> float:
    try:
        share = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number") from None
    if not 0.0 <= share <= 1.0:
        raise argparse.ArgumentTypeError(f"{value} is out of range: give a share from 0 to 1")
    return share


def _scenarios(kind: str):
    """"all", "none", or scenario numbers from 1 (checked against the scenarios of `kind`)."""

    def parse(value: str) -> str:
        value = value.strip().lower()
        if value in ("all", "none"):
            return value
        if str(ROOT) not in sys.path:
            sys.path.insert(0, str(ROOT))
        from bench import providers, texts

        count = len((providers if kind == "providers" else texts).SCENARIOS)
        numbers = [_whole(1, count)(number.strip()) for number in value.split(",") if number.strip()]
        if not numbers:
            raise argparse.ArgumentTypeError(f"give all, none or {kind} scenario numbers from 1 to {count}")
        return ",".join(str(number) for number in numbers)

    return parse


def run_providers(which: str, *, concurrency: int) -> None:
    """The provider scenarios (bench/providers.py), in their own database."""
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection

    from bench import providers
    from patients.models import Membership, Practice, Role

    settings.STORAGES = {**settings.STORAGES, "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}
    print(describe_machine(), flush=True)
    call_command("migrate", verbosity=0)
    chosen = providers.SCENARIOS if which == "all" else [providers.SCENARIOS[int(n) - 1] for n in which.split(",")]
    cap = int(os.environ.get("BENCH_PROVIDER_PATIENTS_CAP", "0"))  # a quick try of the machinery
    if cap:
        chosen = [dataclasses.replace(s, patients=min(s.patients, cap)) for s in chosen]
    admin = get_user_model().objects.create_user("bench-admin", "admin@bench.example", "bench-password-1")
    practices = {}
    with connection.cursor() as cursor:
        cursor.execute("SET synchronous_commit = off")
        for size in sorted({scenario.patients for scenario in chosen}):
            practice = Practice.objects.create(name=f"Providers {size:,}", contact_email="office@providers.example")
            Membership.objects.create(user=admin, practice=practice, role=Role.ADMIN)
            _patients(cursor, practice, size, eligible=size, prefix=f"P{size}-")
            practices[size] = practice
        cursor.execute("RESET synchronous_commit")
        cursor.execute("VACUUM ANALYZE patients_patient")
    serial_practice = Practice.objects.create(name="One connection", contact_email="office@serial.example")
    _naive_patients(serial_practice, 200)

    serial_rate = None
    if any(s.provider == "postmark" and s.latency == 0.08 and not s.rate_limit for s in chosen):
        standin = providers.start_standin(providers.SCENARIOS[0])
        try:
            serial_rate = providers.one_connection_loop(serial_practice, 200)
        finally:
            standin.terminate()
            standin.wait(timeout=30)
        print(f"one connection, one at a time: {serial_rate:.1f}/s", flush=True)
    results = []
    for scenario in chosen:
        print(f"{scenario.name}: {scenario.patients:,} patients ...", flush=True)
        result = providers.run_scenario(
            scenario, practices[scenario.patients], admin, concurrency=concurrency,
            start_worker=start_worker, process_tree=process_tree, peak_memory_mb=peak_memory_mb,
        )
        print(f"  {result['targeted']:,} in {result['seconds']:.1f} s = {result['rate']:,.1f}/s; "
              f"{result['requests']:,} requests, {result['throttled']:,} answered 429, {result['failed']:,} failed, "
              f"{result['twice']:,} emailed twice, done early: {result['shown_done_early']}", flush=True)
        results.append(result)
    providers.print_table(results, serial_rate)


def run_texts(which: str, *, concurrency: int) -> None:
    """The text scenarios (bench/texts.py), in their own database."""
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from bench import texts

    texts.run_all(
        which, concurrency=concurrency, start_worker=start_worker, process_tree=process_tree,
        peak_memory_mb=peak_memory_mb, describe_machine=describe_machine,
    )


def _server():
    import psycopg

    return psycopg.connect(f"{POSTGRES}/postgres", autocommit=True)


def recreate_database(name: str) -> None:
    drop_database(name)
    with _server() as conn:
        conn.execute(f'CREATE DATABASE "{name}"')


def drop_database(name: str) -> None:
    with _server() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def print_table(results: list[dict]) -> None:
    print("\n" + results[0]["machine"])
    header = "| | " + " | ".join(f"{r['size']:,} patients" for r in results) + " |"
    print(header)
    print("|---|" + "---|" * len(results))

    def row(label, fmt):
        print(f"| {label} | " + " | ".join(fmt(r) for r in results) + " |")

    row("data generated (patients / invitations)", lambda r: f"{r['generate_s']:.0f} s ({r['patients']:,} / {r['invitations_before']:,})")
    row("search keys backfill (migration 0010) over every patient", lambda r: f"{r['backfill_s']:.0f} s")
    row("Bench's patients who prefer Spanish", lambda r: f"{r.get('spanish', 0):.0%}")
    row("Activate Now's targets who are children (invited through a parent)", lambda r: f"{r.get('children', 0):.0%}")
    row("Activate Now preview page", lambda r: f"{r['preview_ms']:,.0f} ms")
    row("Activate Now confirm request", lambda r: f"{r['confirm_ms']:,.0f} ms")
    row("invitations created and handed to the email backend", lambda r: f"{r['sent']:,} in {r['total_s']:.1f} s")
    row("invitations per second (Activate Now)", lambda r: f"{r['rate']:,.0f}/s")
    row("naive loop, one at a time", lambda r: (
        f"{r['naive_rate']:,.0f}/s ({ACTIVATE_TARGET / r['naive_rate']:,.0f} s for 100,000)" if r["naive_rate"] else "not measured"
    ))
    row("speed-up over the naive loop", _speed_up)
    row("worker peak memory (largest process / all)", lambda r: f"{r['worker_peak_mb']:.0f} MB / {r['worker_total_mb']:.0f} MB")
    row("worker CPU time, all processes (less sensitive to a busy machine than the wall clock)",
        lambda r: f"{r['worker_cpu_s']:.1f} s" if "worker_cpu_s" in r else "not measured")
    row("a single invitation during Activate Now, seconds to sent (median / max of n)", lambda r: (
        f"{statistics.median(r['single_s']):.1f} / {max(r['single_s']):.1f} s of {len(r['single_s'])}"
        + (f", {r['single_unsent']} not sent before the run ended" if r.get('single_unsent') else "")
    ) if r.get("single_s") else "none sent")
    row("expiry sweep (the run's links, a week later)", lambda r: f"{r['expired']:,} of {r['invitations_at_sweep']:,} in {r['sweep_s']:.1f} s")
    row("dashboard figures recount (background job)", lambda r: f"{r['recount_s']:.1f} s")
    for key in results[0]["pages"]:
        row(key, lambda r, key=key: f"{r['pages'][key][0]:,.0f} ms, {r['pages'][key][1]} queries")


def _speed_up(result: dict) -> str:
    return f"{result['rate'] / result['naive_rate']:.0f}x" if result["naive_rate"] else "(no naive loop)"


# == the child: one size, in its own database =================================================


def run_one(size: int, *, naive: int, concurrency: int, spanish: float = 0.0, children: float = 0.0) -> dict:
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.conf import settings

    # Admin pages without collectstatic's manifest (the bench times views, not static files).
    settings.STORAGES = {**settings.STORAGES, "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}
    from django.core.management import call_command

    results: dict = {"size": size, "machine": describe_machine()}
    start = time.perf_counter()
    call_command("migrate", verbosity=0)
    print(f"migrated in {time.perf_counter() - start:.1f} s", flush=True)

    start = time.perf_counter()
    bench, users = generate(size, naive_size=naive, spanish=spanish, children=children)
    results["spanish"], results["children"] = spanish, children
    results["generate_s"] = time.perf_counter() - start
    results["patients"], results["invitations_before"] = count("patients_patient"), count("invitations_invitation")
    print(f"generated {results['patients']:,} patients and {results['invitations_before']:,} invitations "
          f"in {results['generate_s']:.0f} s", flush=True)

    results["backfill_s"] = backfill_search_keys()
    print(f"search keys of all {results['patients']:,} patients rewritten as migration 0010 fills them in "
          f"{results['backfill_s']:.0f} s", flush=True)

    naive_n, naive_s = naive_loop(naive)
    results["naive_rate"] = naive_n / naive_s if naive_n and naive_s > 0 else None
    if results["naive_rate"]:
        print(f"naive loop: {naive_n:,} invitations one at a time in {naive_s:.1f} s = {results['naive_rate']:,.0f}/s "
              f"(about {ACTIVATE_TARGET / results['naive_rate']:,.0f} s for 100,000)", flush=True)
    else:
        print("naive loop: not measured (--naive 0)", flush=True)

    results["recount_before_s"] = recount(bench)
    print(f"dashboard and preview figures counted (beat's background job) in {results['recount_before_s']:.1f} s", flush=True)

    results.update(activate_now(bench, users["admin"], concurrency))
    results["rate"] = results["sent"] / results["total_s"]
    print(f"Activate Now: preview {results['preview_ms']:,.0f} ms, confirm {results['confirm_ms']:,.0f} ms; "
          f"{results['sent']:,} invitations created and handed to the email backend in {results['total_s']:.1f} s "
          f"= {results['rate']:,.0f}/s, {_speed_up(results) + ' the naive loop' if results['naive_rate'] else 'the naive loop not measured'}; "
          f"worker peak memory {results['worker_peak_mb']:.0f} MB per process, {results['worker_total_mb']:.0f} MB in all, "
          f"worker CPU {results['worker_cpu_s']:.1f} s",
          flush=True)

    results.update(expiry_sweep(bench))
    print(f"expiry sweep: {results['expired']:,} of {results['invitations_at_sweep']:,} invitations "
          f"in {results['sweep_s']:.2f} s", flush=True)

    results["recount_s"] = recount(bench)
    print(f"figures recounted after the run and the sweep in {results['recount_s']:.1f} s", flush=True)
    results["pages"] = admin_pages(bench, users)
    return results


def count(table: str) -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {table}")
        return cursor.fetchone()[0]


def describe_machine() -> str:
    import redis
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        pg = cursor.fetchone()[0].split()[0]
        cursor.execute("SHOW shared_buffers")
        buffers = cursor.fetchone()[0]
    redis_version = redis.Redis.from_url(REDIS).info().get("redis_version")
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), platform.processor())
    memory = next(int(line.split()[1]) for line in open("/proc/meminfo") if line.startswith("MemTotal"))
    return (f"{os.cpu_count()} cores ({cpu}), {memory / 1024 / 1024:.0f} GB RAM; PostgreSQL {pg} "
            f"(shared_buffers {buffers}), Redis {redis_version}, Python {platform.python_version()}")


# -- data ------------------------------------------------------------------------------------

#: Share of the non-target patients in each state, by `n % 20` (see the module docstring).
MIX_SQL = """
    CASE
        WHEN n <= %(eligible)s THEN 'target'
        WHEN mod(n, 20) < 6 THEN 'registered'
        WHEN mod(n, 20) < 11 THEN 'open'
        WHEN mod(n, 20) < 14 THEN 'expired'
        WHEN mod(n, 20) = 14 THEN 'failed'
        WHEN mod(n, 20) = 15 THEN 'no_email'
        WHEN mod(n, 20) = 16 THEN 'no_consent'
        WHEN mod(n, 20) = 17 THEN 'opted_out'
        WHEN mod(n, 20) = 18 THEN 'deceased'
        ELSE 'no_dob'
    END
"""
FIRST_NAMES = ["Robin", "Alex", "Sam", "Jordan", "Casey", "Taylor", "Morgan", "Jamie"]
LAST_NAMES = ["Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Lopez", "Wilson"]


def generate(size: int, *, naive_size: int, spanish: float = 0.0, children: float = 0.0):
    from django.contrib.auth import get_user_model
    from django.db import connection

    from patients.models import Membership, Practice, Role

    User = get_user_model()
    bench = Practice.objects.create(name="Bench", contact_email="office@bench.example", contact_phone="(555) 010-0000")
    other = Practice.objects.create(name="Other", contact_email="office@other.example", contact_phone="(555) 010-0001")
    naive = Practice.objects.create(name="Naive", contact_email="office@naive.example", contact_phone="(555) 010-0002")
    desk = Practice.objects.create(name="Desk", contact_email="office@desk.example", contact_phone="(555) 010-0003")
    superuser = User.objects.create_superuser("bench-super", "super@bench.example", "bench-password-1")
    admin = User.objects.create_user("bench-admin", "admin@bench.example", "bench-password-1")
    Membership.objects.create(user=admin, practice=bench, role=Role.ADMIN)
    with connection.cursor() as cursor:
        # Generation only: hash joins of a million rows in memory, no waiting on each commit's flush.
        cursor.execute("SET work_mem = '256MB'; SET maintenance_work_mem = '512MB'; SET synchronous_commit = off")
        steps = time.perf_counter()
        _patients(cursor, bench, size, eligible=min(size, ACTIVATE_TARGET), prefix="B", spanish=spanish, children=children)
        _patients(cursor, other, size // 20, eligible=0, prefix="O")
        print(f"  patients: {time.perf_counter() - steps:.0f} s", flush=True)
        if children:
            steps = time.perf_counter()
            _parents(cursor, bench)
            print(f"  parents of the children: {time.perf_counter() - steps:.0f} s", flush=True)
        steps = time.perf_counter()
        _invitation_history(cursor)
        print(f"  invitation history: {time.perf_counter() - steps:.0f} s", flush=True)
        steps = time.perf_counter()
        for table in ("patients_patient", "auth_user", "invitations_invitation", "invitations_invitationevent",
                      "patients_emailoptout", "patients_representative", "patients_representativeaccess"):
            cursor.execute(f"VACUUM ANALYZE {table}")
        cursor.execute("RESET work_mem; RESET maintenance_work_mem; RESET synchronous_commit")
        print(f"  vacuum: {time.perf_counter() - steps:.0f} s", flush=True)
    _naive_patients(naive, naive_size)
    _naive_patients(desk, DESK_INVITES)  # the front desk's single invitations while Activate Now runs
    return bench, {"superuser": superuser, "admin": admin}


def _patients(cursor, practice, count: int, *, eligible: int, prefix: str, spanish: float = 0.0, children: float = 0.0) -> None:
    # Names spread independently of the state (which follows n % 20), as in a real practice.
    first = "(ARRAY[" + ",".join(f"'{name}'" for name in FIRST_NAMES) + f"])[1 + mod(n / 7, {len(FIRST_NAMES)})]"
    last = "(ARRAY[" + ",".join(f"'{name}'" for name in LAST_NAMES) + f"])[1 + mod(n / 20, {len(LAST_NAMES)})] || mod(n / 3, 997)"
    # Every hundredth block of patients: `spanish` of them prefer Spanish (spread evenly over the chunks),
    # and of the targets `children` are 3 to 10 years old (too young for their own account: `_parents`).
    params = {
        "practice": practice.pk, "count": count, "eligible": eligible, "prefix": prefix, "spanish": round(spanish * 100),
        "children": round(children * 100),
    }
    cursor.execute(
        f"""
        INSERT INTO patients_patient (practice_id, chart_number, first_name, last_name, date_of_birth, zip_code,
            email, phone, birth_sex, email_consent, deceased, portal_user_id, registered_at, bounced_email,
            self_signup_unverified, created_at, updated_at,
            search_first, search_last, search_chart, chart_digits, phone_digits, preferred_language)
        SELECT %(practice)s, chart, first, last,
               CASE WHEN state = 'no_dob' THEN NULL
                    WHEN state = 'target' AND mod(n, 100) < %(children)s THEN (current_date - make_interval(years => 3 + mod(n, 8)))::date - mod(n, 300)
                    ELSE DATE '1940-01-01' + (mod(n, 25000)) END,
               '02139',
               CASE WHEN state = 'no_email' THEN '' ELSE lower(%(prefix)s) || n || '@bench.example' END,
               '(617) ' || substr(phone, 4, 3) || '-' || substr(phone, 7, 4), 'F', state <> 'no_consent',
               state = 'deceased', NULL, NULL, '', false, now() - interval '400 days', now() - interval '400 days',
               -- the search keys as Patient.fill_search_keys writes them (the names are ASCII here)
               lower(first), lower(last), lower(chart), n::text, phone,
               CASE WHEN mod(n, 100) < %(spanish)s THEN 'es' ELSE 'en' END
        FROM (SELECT n, {MIX_SQL} AS state, %(prefix)s || lpad(n::text, 8, '0') AS chart, {first} AS first,
                     {last} AS last, '617' || lpad(n::text, 7, '0') AS phone
              FROM generate_series(1, %(count)s) AS n) AS mix
        ORDER BY n
        """,
        params,
    )
    # Each patient's state again, by id, for the history below.
    cursor.execute(
        f"""
        CREATE TEMP TABLE IF NOT EXISTS bench_state (patient_id bigint PRIMARY KEY, practice_id bigint, n int, state text, email text);
        INSERT INTO bench_state
        SELECT p.id, p.practice_id, mix.n, mix.state, p.email
        FROM patients_patient p
        JOIN (SELECT n, {MIX_SQL} AS state FROM generate_series(1, %(count)s) AS n) AS mix
          ON p.chart_number = %(prefix)s || lpad(mix.n::text, 8, '0')
        WHERE p.practice_id = %(practice)s
        """,
        params,
    )
    cursor.execute(
        """
        INSERT INTO patients_emailoptout (practice_id, email, reason, created_at)
        SELECT practice_id, email, 'patient', now() - interval '100 days' FROM bench_state
        WHERE practice_id = %s AND state = 'opted_out'
        """,
        [practice.pk],
    )


def _parents(cursor, practice) -> None:
    """A parent on file for each child among the targets (`--children`), invited by nobody yet: two
    siblings (n and n + 1) share one, so Activate Now sends one invitation per child, to the
    parent's address (the parent's own, not the child's chart's)."""
    cursor.execute(
        """
        WITH children AS (
            SELECT s.patient_id, s.n / 2 AS family FROM bench_state s JOIN patients_patient p ON p.id = s.patient_id
            WHERE s.practice_id = %(practice)s AND s.state = 'target' AND p.date_of_birth > current_date - interval '12 years'
        ), parents AS (
            INSERT INTO patients_representative (practice_id, first_name, last_name, email, mobile_phone, sms_consent, created_at)
            SELECT %(practice)s, 'Parent', 'Family' || family, 'parent' || family || '@bench.example', '', false,
                   now() - interval '100 days'
            FROM (SELECT DISTINCT family FROM children) AS families
            RETURNING id, email
        )
        INSERT INTO patients_representativeaccess (practice_id, patient_id, representative_id, relationship, level,
            full_access_reason, patient_consent, court_document, status, granted_at, granted_by_patient, ends_at_majority,
            end_reason, end_note)
        SELECT %(practice)s, c.patient_id, r.id, 'parent', 'full', '', '', '', 'invited', now() - interval '100 days', false, true,
               '', ''
        FROM children c JOIN parents r ON r.email = 'parent' || c.family || '@bench.example'
        """,
        {"practice": practice.pk},
    )


def _invitation_history(cursor) -> None:
    """Invitations (with created/sent/... events) for every patient not in the target group."""
    cursor.execute(
        """
        INSERT INTO auth_user (password, is_superuser, username, first_name, last_name, email, is_staff, is_active, date_joined)
        SELECT '!', false, 'bench-patient-' || patient_id, '', '', '', false, true, now() - interval '30 days'
        FROM bench_state WHERE state = 'registered';
        UPDATE patients_patient p SET portal_user_id = u.id, registered_at = now() - interval '29 days'
        FROM auth_user u, bench_state s
        WHERE s.patient_id = p.id AND s.state = 'registered' AND u.username = 'bench-patient-' || p.id;
        """
    )
    # `age` spreads the invitations over the last year so the dashboard's chart has twelve months.
    rows = """
        SELECT s.patient_id, s.practice_id, s.email, s.n, kind, age
        FROM bench_state s
        CROSS JOIN LATERAL (VALUES
            ('older', 40 + mod(s.n, 300)),
            ('current', CASE s.state WHEN 'open' THEN mod(s.n, 6) ELSE 10 + mod(s.n, 320) END)
        ) AS k(kind, age)
        WHERE s.state IN ('registered', 'open', 'expired', 'failed')
          AND (k.kind = 'current' OR s.state IN ('registered', 'open'))
    """
    cursor.execute(
        f"""
        INSERT INTO invitations_invitation (public_id, practice_id, patient_id, email, token_hash, status, revoke_reason,
            failure_reason, source, created_at, sending_started_at, send_attempts, sent_at, expires_at, accepted_at,
            ended_at, provider_message_id, failed_attempts, is_latest)
        SELECT gen_random_uuid(), r.practice_id, r.patient_id, r.email,
               encode(sha256(('bench-' || r.patient_id || '-' || r.kind)::bytea), 'hex'),
               CASE WHEN r.kind = 'older' THEN 'expired' ELSE
                   CASE s.state WHEN 'registered' THEN 'accepted' WHEN 'open' THEN 'sent' ELSE s.state END END,
               '', CASE WHEN s.state = 'failed' AND r.kind = 'current' THEN 'Mailbox unavailable' ELSE '' END,
               'manual', now() - make_interval(days => r.age), NULL, 1,
               CASE WHEN s.state = 'failed' AND r.kind = 'current' THEN NULL ELSE now() - make_interval(days => r.age) END,
               now() - make_interval(days => r.age) + interval '7 days',
               CASE WHEN s.state = 'registered' AND r.kind = 'current' THEN now() - make_interval(days => r.age) + interval '1 day' END,
               CASE WHEN r.kind = 'older' OR s.state IN ('expired', 'failed') THEN now() - make_interval(days => r.age) + interval '7 days' END,
               'bench-' || r.patient_id || '-' || r.kind, 0, r.kind = 'current'
        FROM ({rows}) AS r JOIN bench_state s ON s.patient_id = r.patient_id
        ORDER BY r.kind DESC, r.patient_id
        """
    )
    cursor.execute(
        """
        INSERT INTO invitations_invitationevent (invitation_id, kind, at, detail)
        SELECT id, 'created', created_at, '' FROM invitations_invitation
        UNION ALL SELECT id, 'sent', sent_at, '' FROM invitations_invitation WHERE sent_at IS NOT NULL
        UNION ALL SELECT id, status, coalesce(accepted_at, ended_at), '' FROM invitations_invitation
            WHERE status IN ('accepted', 'expired', 'failed')
        """
    )


def _naive_patients(practice, count: int) -> None:
    import datetime

    from patients.models import BirthSex, Patient

    Patient.objects.bulk_create(
        [
            Patient(practice=practice, chart_number=f"N{i:06d}", first_name="Naive", last_name=f"Loop{i}",
                    date_of_birth=datetime.date(1980, 1, 1) + datetime.timedelta(days=i), zip_code="02139",
                    email=f"{practice.name.lower().replace(' ', '-')}{i}@bench.example", birth_sex=BirthSex.FEMALE, email_consent=True)
            for i in range(count)
        ]
    )


# -- the search keys' backfill ---------------------------------------------------------------------


def backfill_search_keys() -> float:
    """Migration 0010's backfill over every patient (what upgrading an install this size costs),
    then a vacuum so the measurements after it read a tidy table."""
    import importlib

    from django.apps import apps
    from django.db import connection

    migration = importlib.import_module("patients.migrations.0010_search_keys")
    start = time.perf_counter()
    with connection.schema_editor() as editor:
        migration.fill_keys(apps, editor)
    elapsed = time.perf_counter() - start
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE patients_patient")
        # The keys the SQL generation wrote are the ones Python writes (the names are ASCII).
        cursor.execute("SELECT count(*) FROM patients_patient WHERE search_last <> lower(last_name) AND practice_id IN "
                       "(SELECT id FROM patients_practice WHERE name IN ('Bench', 'Other'))")
        assert cursor.fetchone()[0] == 0
    return elapsed


# -- the naive loop ----------------------------------------------------------------------------


def naive_loop(sample: int) -> tuple[int, float]:
    """One invite + one send at a time, in this process: `services.invite` for each patient and
    its email sent right after the commit by `services.deliver` (no queue), as django-invitations
    sends each invitation inside the request that makes it."""
    from django.db import transaction
    from django.utils import timezone

    from invitations import services
    from invitations.models import Source
    from patients.models import Patient

    if not sample:
        return 0, 0.0
    patients = list(Patient.objects.filter(practice__name="Naive").select_related("practice").order_by("pk")[:sample])
    original = services.enqueue_on_commit
    services.enqueue_on_commit = lambda task, pk: transaction.on_commit(lambda: services.deliver(pk, now=timezone.now()))
    try:
        start = time.perf_counter()
        for patient in patients:
            outcome = services.invite(patient, now=timezone.now(), source=Source.MANUAL)
            assert outcome.created, outcome.reasons
        elapsed = time.perf_counter() - start
    finally:
        services.enqueue_on_commit = original
    from invitations.models import Invitation

    sent = Invitation.objects.filter(practice__name="Naive", status="sent").count()
    assert sent == len(patients), (sent, len(patients))
    return len(patients), elapsed


# -- Activate Now ------------------------------------------------------------------------------


def start_worker(concurrency: int, extra_env: dict | None = None) -> subprocess.Popen:
    import redis

    from portal_project.celery import ping

    redis.Redis.from_url(REDIS).flushdb()
    var = Path(os.environ["PORTAL_VAR_DIR"])
    var.mkdir(parents=True, exist_ok=True)
    log = open(var / "bench-worker.log", "w")
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "portal_project", "worker", "--pool", "prefork",
         "--concurrency", str(concurrency), "--loglevel", "WARNING",
         "--without-heartbeat", "--without-gossip", "--without-mingle"],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(extra_env or {})},
    )
    ping.apply_async(ignore_result=False).get(timeout=60)  # the worker is up and consuming
    return worker


def process_tree(pid: int) -> list[int]:
    pids, todo = [], [pid]
    while todo:
        current = todo.pop()
        pids.append(current)
        for task in Path(f"/proc/{current}/task").glob("*"):
            children = (task / "children").read_text().split() if (task / "children").exists() else []
            todo.extend(int(child) for child in children)
    return pids


def cpu_seconds(pid: int) -> float:
    """The CPU time (user + system) a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_memory_mb(pid: int) -> float:
    """VmHWM: the most resident memory the process ever had."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def activate_now(practice, user, concurrency: int) -> dict:
    from django.db import connection
    from django.urls import reverse

    from invitations.models.bulk_runs import BulkRun

    client = staff_client(user)
    url = reverse("admin:invitations_portal_activate", args=[practice.pk])
    worker = start_worker(concurrency)
    try:
        start = time.perf_counter()
        preview = client.get(url)
        preview_s = time.perf_counter() - start
        assert preview.status_code == 200, preview.status_code

        start = time.perf_counter()
        response = client.post(url)
        confirm_s = time.perf_counter() - start
        assert response.status_code == 302, response.status_code
        run = BulkRun.objects.filter(practice=practice).latest("created_at")
        desk = FrontDesk()
        while True:
            run.refresh_from_db(fields=["status", "finished_at", "planned_at"])
            if not run.is_running:
                break
            if time.perf_counter() - start > 1800:
                raise SystemExit(f"run {run.pk} not finished after 30 minutes")
            desk.step(sending=run.planned_at is not None)
            time.sleep(0.05)
        total_s = time.perf_counter() - start
        desk.finish()
        peaks = [peak_memory_mb(pid) for pid in process_tree(worker.pid)]
        worker_cpu_s = sum(cpu_seconds(pid) for pid in process_tree(worker.pid))
    finally:
        worker.terminate()
        worker.wait(timeout=60)
    run.refresh_from_db()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*), count(DISTINCT patient_id), count(*) FILTER (WHERE status = 'sent') "
            "FROM invitations_invitation WHERE practice_id = %s AND source = 'bulk'", [practice.pk],
        )
        made, patients, sent = cursor.fetchone()
    assert made == patients == sent == run.targeted == run.sent, (made, patients, sent, run.targeted, run.sent)
    print(f"single invitations during the run: {len(desk.samples)} sent, seconds to sent "
          f"{', '.join(f'{s:.1f}' for s in desk.samples)}; {desk.unsent} not sent before the run ended", flush=True)
    return {
        "preview_ms": preview_s * 1000, "confirm_ms": confirm_s * 1000, "total_s": total_s, "sent": sent,
        "targeted": run.targeted, "chunks": run.chunks.count(),
        "worker_peak_mb": max(peaks), "worker_total_mb": sum(peaks), "worker_cpu_s": worker_cpu_s,
        "single_s": desk.samples, "single_unsent": desk.unsent,
    }


#: Single invitations the front desk sends while Activate Now runs (one at a time, a few seconds apart).
DESK_INVITES = 20
DESK_EVERY_S = 4.0


class FrontDesk:
    """A receptionist inviting one patient at a time (practice "Desk") while a bulk run sends: the
    app's own single invite (`services.invite`, its task enqueued after commit on the interactive
    queue), timed until the invitation is sent. The next waits DESK_EVERY_S after the last went."""

    def __init__(self):
        from patients.models import Patient

        self.patients = list(Patient.objects.filter(practice__name="Desk").select_related("practice").order_by("pk"))
        self.samples: list[float] = []
        self.unsent = 0
        self.pending = None  # (invitation id, started)
        self.next_at = time.perf_counter() + DESK_EVERY_S

    def step(self, *, sending: bool) -> None:
        from django.utils import timezone

        from invitations import services
        from invitations.models import Invitation, Source

        now = time.perf_counter()
        if self.pending is not None:
            invitation_id, started = self.pending
            if Invitation.objects.filter(pk=invitation_id, sent_at__isnull=False).exists():
                self.samples.append(now - started)
                self.pending, self.next_at = None, now + DESK_EVERY_S
            return
        if not sending or now < self.next_at or not self.patients:
            return
        patient = self.patients.pop(0)
        started = time.perf_counter()
        outcome = services.invite(patient, now=timezone.now(), source=Source.MANUAL)
        assert outcome.created, outcome.reasons
        self.pending = (Invitation.objects.filter(patient=patient).latest("pk").pk, started)

    def finish(self, timeout: float = 60) -> None:
        """The one still being sent when the run ended: timed to the end, or counted as unsent."""
        deadline = time.perf_counter() + timeout
        while self.pending is not None and time.perf_counter() < deadline:
            self.step(sending=False)
            time.sleep(0.05)
        self.unsent += self.pending is not None


# -- the expiry sweep ----------------------------------------------------------------------------


#: Links made to run out for the sweep: the target's "100,000 due".
SWEEP_DUE = 100_000


def expiry_sweep(practice) -> dict:
    """A week after the Activate Now run its links run out together: make 100,000 of them due
    (as they are, contiguous in the table) and time the beat task's body."""
    from django.db import connection
    from django.utils import timezone

    from invitations import services

    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM invitations_invitation")
        total = cursor.fetchone()[0]
        cursor.execute(
            "UPDATE invitations_invitation SET expires_at = now() - interval '1 minute' WHERE id IN "
            "(SELECT id FROM invitations_invitation WHERE practice_id = %s AND source = 'bulk' AND status = 'sent' "
            " ORDER BY id LIMIT %s)",
            [practice.pk, SWEEP_DUE],
        )
        due = cursor.rowcount
        for table in ("invitations_invitation", "invitations_invitationevent"):
            cursor.execute(f"VACUUM ANALYZE {table}")
        cursor.execute("CHECKPOINT")
    start = time.perf_counter()
    expired = services.expire_due(now=timezone.now())
    elapsed = time.perf_counter() - start
    assert expired == due, (expired, due)
    return {"expired": expired, "invitations_at_sweep": total, "sweep_s": elapsed}


# -- admin pages ---------------------------------------------------------------------------------


def staff_client(user):
    """A test client signed in as `user`, with the second factor given where the account owes one
    (superusers: patients.staff_auth.two_factor), as the staff member would at sign-in."""
    from django.test import Client

    client = Client()
    client.force_login(user)
    try:
        from django_otp import DEVICE_ID_SESSION_KEY
        from django_otp.plugins.otp_totp.models import TOTPDevice

        from patients.staff_auth.two_factor import NEEDED_SESSION_KEY
    except ImportError:  # an install without two-factor sign-in
        return client
    session = client.session
    if session.get(NEEDED_SESSION_KEY):
        device = TOTPDevice.objects.filter(user=user, confirmed=True).first()
        device = device or TOTPDevice.objects.create(user=user, name="Bench authenticator", confirmed=True)
        session[DEVICE_ID_SESSION_KEY] = device.persistent_id
        session.save()
    return client


def recount(practice) -> float:
    """What the beat job (and "Refresh now") does in the background: count the dashboard's and
    Activate Now's figures for the practice and store them."""
    from django.utils import timezone

    from invitations import adoption

    start = time.perf_counter()
    adoption.refresh(practice, now=timezone.now())
    return time.perf_counter() - start


def admin_pages(practice, users) -> dict:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    pages = [
        ("patient list", "/admin/patients/patient/"),
        ("patient list, not invited", "/admin/patients/patient/?portal_status=not_invited"),
        ("patient list, failed", "/admin/patients/patient/?portal_status=failed"),
        ("patient search, last name prefix", "/admin/patients/patient/?q=Smi"),
        ("patient search, a name as typed", "/admin/patients/patient/?q=garcia"),
        ("patient search, first and last name", "/admin/patients/patient/?q=robin+garcia12"),
        ("patient search, phone number", "/admin/patients/patient/?q=617-012-3456"),
        ("patient search, chart number without prefix", "/admin/patients/patient/?q=123456"),
        ("patient search, date of birth", "/admin/patients/patient/?q=03%2F15%2F1975"),
        ("invitation list", "/admin/invitations/invitation/"),
        ("portal dashboard", f"/admin/invitations/bulkrun/portal/{practice.pk}/"),
        ("Activate Now preview", f"/admin/invitations/bulkrun/portal/{practice.pk}/activate/"),
        ("bulk runs list", "/admin/invitations/bulkrun/"),
    ]
    results = {}
    for role, user in (("superuser", users["superuser"]), ("practice admin", users["admin"])):
        client = staff_client(user)
        for label, url in pages:
            times, queries = [], 0
            for _ in range(3):
                with CaptureQueriesContext(connection) as ctx:
                    start = time.perf_counter()
                    response = client.get(url, HTTP_HOST="localhost")
                    times.append(time.perf_counter() - start)
                assert response.status_code == 200, (url, response.status_code)
                queries = len(ctx)
            key = f"{label} ({role})"
            results[key] = (statistics.median(times) * 1000, queries)
            print(f"{key:<50} {results[key][0]:>8,.0f} ms {queries:>4} queries", flush=True)
    return results


if __name__ == "__main__":
    main()
