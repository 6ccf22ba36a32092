"""Activate Now by text message against Twilio's rate limits: the text scenarios of `bench/run.py --texts`.

Each scenario starts the Twilio stand-in (tests/twilio_standin/) as its own process with a latency of
200 ms a call and the scenario's rate limit (a token bucket answering 429 beyond it), a real Celery
worker (prefork, 2 processes, the defaults: chunks of 500, 8 texts in flight per chunk) whose texts go
through the official twilio client to the stand-in, with the scenario's ``PORTAL_SMS_RATE_LIMIT``
(the account's rate shared by every worker through Redis), and starts Activate Now for a practice
whose patients are all reachable by text only (no email address; a mobile number and text consent),
as the admin's confirm request does (`runs.start_run(..., plan_later=True)`: the worker plans it).

It measures the time until the run reads as done, what the stand-in received (requests, texts taken,
429 answers, numbers texted twice), what the database says (sent, failed), whether the run read as
done before Twilio had every text, the chunks' attempts (a chunk hands itself on after
``PORTAL_BULK_SEND_SECONDS``), and the worker's peak memory (VmHWM of each of its processes).

Left out: Twilio's status callbacks (the stand-in posts none here: no web server runs, and in
production they land on the web processes, not the worker), a real network's latency spread, and
delivery by carriers; everything shares this machine's cores (worker, PostgreSQL, Redis, the
stand-in and the script).
"""

from __future__ import annotations

import dataclasses
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STANDIN_PORT = 8026
LATENCY = 0.2


@dataclasses.dataclass
class Scenario:
    name: str
    patients: int
    twilio_rate: float  # the stand-in's limit, texts a second
    our_rate: float  # PORTAL_SMS_RATE_LIMIT
    note: str = ""
    extra_env: dict = dataclasses.field(default_factory=dict)


SCENARIOS = [
    Scenario("long code: Twilio 1 text/s, our rate 1", 120, 1, 1, "a US long code"),
    Scenario("messaging service: Twilio 30 texts/s, our rate 30", 3000, 30, 30, "a messaging service with a pool of numbers"),
    Scenario("Twilio 30 texts/s, our rate 60 (429s learned)", 3000, 30, 60, "PORTAL_SMS_RATE_LIMIT set too high"),
    Scenario("long code, a chunk's time cut to 30 s (handed on)", 120, 1, 1, "PORTAL_BULK_SEND_SECONDS=30",
             extra_env={"PORTAL_BULK_SEND_SECONDS": "30"}),
]


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def start_standin(scenario: Scenario) -> subprocess.Popen:
    if not port_free(STANDIN_PORT):
        raise SystemExit(f"port {STANDIN_PORT} is taken: stop what listens there")
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.twilio_standin", "--port", str(STANDIN_PORT), "--latency", str(LATENCY),
         "--rate-limit", str(scenario.twilio_rate), "--keep-messages", "false", "--callbacks", "false"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
    )
    for _ in range(100):
        if not port_free(STANDIN_PORT):
            return process
        time.sleep(0.05)
    raise SystemExit("the Twilio stand-in did not start")


def texting_practice(size: int):
    """A practice that invites by email, else by text, with `size` patients reachable by text only."""
    from patients.models import BulkChannels, Patient, Practice

    practice = Practice.objects.create(
        name=f"Texts {size:,}", contact_email="office@texts.example", contact_phone="(555) 010-0002",
        text_invitations_enabled=True, bulk_channels=BulkChannels.EMAIL_THEN_TEXT,
    )
    Patient.objects.bulk_create(
        [
            Patient(
                practice=practice, chart_number=f"T{size}-{n:06d}", first_name="Robin", last_name=f"Texter{n}",
                date_of_birth="1980-01-01", zip_code="02139", email="", birth_sex="F", email_consent=True,
                mobile_phone=f"+1617{n:07d}", sms_consent=True,
            )
            for n in range(1, size + 1)
        ],
        batch_size=1000,
    )
    return practice


def run_scenario(scenario: Scenario, practice, *, concurrency: int, start_worker, process_tree, peak_memory_mb) -> dict:
    from django.db.models import Count, Sum
    from django.utils import timezone

    from bench.providers import forget_runs, stop
    from invitations.bulk import runs
    from invitations.models.bulk_runs import BulkRunChunk
    from invitations.models import Invitation
    from tests.twilio_standin import TwilioStandIn, control

    url = f"http://127.0.0.1:{STANDIN_PORT}"
    forget_runs()
    standin = start_standin(scenario)
    env = {**TwilioStandIn(STANDIN_PORT).environment(), "PORTAL_SMS_RATE_LIMIT": str(scenario.our_rate), **scenario.extra_env}
    worker = start_worker(concurrency, env)
    try:
        started = time.perf_counter()
        run = runs.start_run(practice=practice, now=timezone.now(), plan_later=True)
        shown_done_early = False
        while True:
            run.refresh_from_db(fields=["status", "targeted", "failed"])
            if not run.is_running:
                taken = control(url, "stats")["accepted"]
                shown_done_early = taken < run.targeted - run.failed
                break
            if time.perf_counter() - started > 1800:
                raise SystemExit(f"{scenario.name}: not finished after 30 minutes")
            time.sleep(0.25)
        elapsed = time.perf_counter() - started
        peaks = [peak_memory_mb(pid) for pid in process_tree(worker.pid)]
        stats = control(url, "stats")
    finally:
        worker.terminate()
        worker.wait(timeout=60)
        stop(standin)
    run.refresh_from_db()
    statuses = dict(Invitation.objects.filter(practice=practice).values_list("status").annotate(n=Count("pk")).order_by())
    attempts = BulkRunChunk.objects.filter(run=run).aggregate(n=Sum("attempts"), chunks=Count("pk"))
    span = (stats["last_accepted_at"] or 0) - (stats["first_accepted_at"] or 0)
    return {
        "name": scenario.name, "note": scenario.note, "targeted": run.targeted, "seconds": elapsed,
        "rate": run.targeted / elapsed if elapsed else 0.0,
        "sustained": (stats["accepted"] - 1) / span if span > 0 else 0.0,
        "requests": stats["requests"], "accepted": stats["accepted"], "throttled": stats["throttled"],
        "twice": stats["recipients_texted_twice"], "sent": statuses.get("sent", 0), "failed": statuses.get("failed", 0),
        "texts_sent": run.texts_sent, "shown_done_early": shown_done_early, "max_in_flight": stats["max_in_flight"],
        "chunks": attempts["chunks"], "attempts": attempts["n"] or 0,
        "worker_peak_mb": max(peaks), "worker_total_mb": sum(peaks),
    }


def run_all(which: str, *, concurrency: int, start_worker, process_tree, peak_memory_mb, describe_machine) -> list[dict]:
    """The chosen scenarios ("all" or numbers from 1), in this process's (fresh) database."""
    from django.core.management import call_command

    print(describe_machine(), flush=True)
    call_command("migrate", verbosity=0)
    chosen = SCENARIOS if which == "all" else [SCENARIOS[int(n) - 1] for n in which.split(",")]
    cap = int(os.environ.get("BENCH_TEXT_PATIENTS_CAP", "0"))  # a quick try of the machinery
    if cap:
        chosen = [dataclasses.replace(s, patients=min(s.patients, cap)) for s in chosen]
    practices = {size: texting_practice(size) for size in sorted({scenario.patients for scenario in chosen})}
    results = []
    for scenario in chosen:
        print(f"{scenario.name}: {scenario.patients:,} patients by text ...", flush=True)
        result = run_scenario(
            scenario, practices[scenario.patients], concurrency=concurrency, start_worker=start_worker,
            process_tree=process_tree, peak_memory_mb=peak_memory_mb,
        )
        print(f"  {result['targeted']:,} in {result['seconds']:.1f} s = {result['rate']:,.2f}/s "
              f"(sustained {result['sustained']:,.2f}/s); {result['requests']:,} requests, {result['throttled']:,} "
              f"answered 429, {result['failed']:,} failed, {result['twice']:,} texted twice, "
              f"done early: {result['shown_done_early']}", flush=True)
        results.append(result)
    print_table(results)
    return results


def print_table(results: list[dict]) -> None:
    print()
    print(f"Twilio stand-in: {LATENCY * 1000:.0f} ms a call, its own process; worker: prefork, 2 processes.")
    print("| scenario | texts | time | texts/s (sustained) | requests (429s) | failed | texted twice | shown done early | "
          "chunks (attempts) | worker peak memory (largest / all) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        throttled = f"{r['requests']:,} ({r['throttled']:,}, {100 * r['throttled'] / max(r['requests'], 1):.1f} %)"
        print(f"| {r['name']} | {r['targeted']:,} | {r['seconds']:,.1f} s | {r['rate']:,.2f}/s ({r['sustained']:,.2f}/s) | "
              f"{throttled} | {r['failed']:,} | {r['twice']:,} | {'yes' if r['shown_done_early'] else 'no'} | "
              f"{r['chunks']} ({r['attempts']}) | {r['worker_peak_mb']:.0f} MB / {r['worker_total_mb']:.0f} MB |")
    print()
    for r in results:
        print(f"{r['name']}: {r['accepted']:,} texts taken by the stand-in, {r['texts_sent']:,} marked sent, "
              f"most calls in flight at once {r['max_in_flight']}")
