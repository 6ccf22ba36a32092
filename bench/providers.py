"""Activate Now against email providers as they are: the provider scenarios of `bench/run.py`.

Each scenario starts the provider stand-in (tests/provider_standin.py) as its own process with the
scenario's latency and rate limit, a real Celery worker (prefork, 2 processes) whose anymail backend
is the provider's real one pointed at the stand-in, and runs Activate Now through the admin. It
measures the time until the run reads as done, what the stand-in received (requests, messages, 429
answers, recipients emailed twice), what the database says (sent, failed), whether the run read as
done before the provider had every email, and the worker's peak memory. Everything shares this
machine's cores: the worker, PostgreSQL, Redis, the stand-in and the script.

The "one connection, one at a time" figure is `services.invite` + send for each patient in this
process through the same backend and stand-in: the loop the issue compares with.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

ROOT = Path(__file__).resolve().parent.parent
#: Two benches on one machine at once need different ports (BENCH_STANDIN_PORT).
STANDIN_PORT = int(os.environ.get("BENCH_STANDIN_PORT", "8025"))


@dataclass
class Scenario:
    name: str
    provider: str
    patients: int
    latency: float
    rate_limit: float = 0.0  # the provider's, in requests a second
    our_rate: float = 0.0  # PORTAL_EMAIL_RATE_LIMIT
    strict_window: bool = False  # the provider counts its limit in each whole second, not a token bucket
    extra_env: dict = field(default_factory=dict)
    target: str = ""


SCENARIOS = [
    Scenario("Postmark-like, 80 ms a call, no limit", "postmark", 100_000, 0.08, target=">= 250/s, >= 15x one connection"),
    Scenario("Mailgun-like batches, 300 ms a call", "mailgun", 100_000, 0.3, target=">= 800/s"),
    Scenario("14 requests/s limit, our rate set to 14", "postmark", 2_000, 0.08, rate_limit=14, our_rate=14,
             target=">= 13/s sustained, <= 5 % 429s, 0 failed, 0 twice"),
    Scenario("14 requests/s limit, no rate of ours (learned)", "postmark", 2_000, 0.08, rate_limit=14,
             target="(no target: what happens when ops forgot the setting)"),
    Scenario("700 ms a call", "postmark", 5_000, 0.7, target="0 chunks cut by the time limit, 0 twice"),
    Scenario("700 ms a call, one call at a time per chunk", "postmark", 1_000, 0.7,
             extra_env={"PORTAL_SEND_CONCURRENCY": "1"},
             target="(the deadline at work: a chunk of 500 needs 350 s, its budget is 180 s)"),
    Scenario("14 requests/s counted in strict one-second windows, our rate set to 14", "postmark", 2_000, 0.08,
             rate_limit=14, our_rate=14, strict_window=True, target=">= 12/s sustained, <= 5 % 429s, 0 failed, 0 twice"),
]


def stop(process: subprocess.Popen) -> None:
    """Stop the stand-in; on a loaded machine it may not finish its answers in time: then kill it."""
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=30)


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def start_standin(scenario: Scenario) -> subprocess.Popen:
    if not port_free(STANDIN_PORT):
        raise SystemExit(f"port {STANDIN_PORT} is taken: stop what listens there")
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.provider_standin", "--port", str(STANDIN_PORT), "--latency", str(scenario.latency),
         "--rate-limit", str(scenario.rate_limit), "--burst", str(scenario.rate_limit or 0), "--keep-messages", "false",
         "--strict-window", str(scenario.strict_window).lower()],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
    )
    for _ in range(100):
        if not port_free(STANDIN_PORT):
            return process
        time.sleep(0.05)
    raise SystemExit("the stand-in did not start")


def cpu_seconds(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def forget_runs() -> None:
    """Every scenario starts from never-invited patients."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE invitations_invitationevent, invitations_invitation, invitations_bulkruntick, "
            "invitations_bulkrunchunk, invitations_bulkrun, core_ratebucket, invitations_practicefigures CASCADE"
        )
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE patients_patient")


def one_connection_loop(practice, sample: int) -> float:
    """Invitations a second when each is made and sent in turn over one connection (in this
    process, through the real Postmark backend, to the stand-in at 80 ms a call)."""
    from django.conf import settings
    from django.db import transaction
    from django.utils import timezone

    from invitations import services
    from invitations.models import Invitation, Source
    from patients.models import Patient
    from tests.provider_standin import anymail_settings

    configured = anymail_settings(f"http://127.0.0.1:{STANDIN_PORT}", "postmark")
    previous = settings.EMAIL_BACKEND, settings.ANYMAIL
    settings.EMAIL_BACKEND, settings.ANYMAIL = configured["EMAIL_BACKEND"], configured["ANYMAIL"]
    original = services.enqueue_on_commit
    services.enqueue_on_commit = lambda task, pk: transaction.on_commit(lambda: services.deliver(pk, now=timezone.now()))
    try:
        patients = list(Patient.objects.filter(practice=practice).order_by("pk")[:sample])
        start = time.perf_counter()
        for patient in patients:
            assert services.invite(patient, now=timezone.now(), source=Source.MANUAL).created
        elapsed = time.perf_counter() - start
    finally:
        services.enqueue_on_commit = original
        settings.EMAIL_BACKEND, settings.ANYMAIL = previous
    assert Invitation.objects.filter(practice=practice, status="sent").count() == len(patients)
    return len(patients) / elapsed


def run_scenario(scenario: Scenario, practice, admin_user, *, concurrency: int, start_worker, process_tree, peak_memory_mb) -> dict:
    from django.db.models import Count, Sum
    from django.test import Client
    from django.urls import reverse

    from invitations.models.bulk_runs import BulkRun, BulkRunChunk
    from invitations.models import Invitation
    from tests.provider_standin import anymail_environment, control

    url = f"http://127.0.0.1:{STANDIN_PORT}"
    forget_runs()
    standin = start_standin(scenario)
    env = anymail_environment(url, scenario.provider)
    if scenario.our_rate:
        env["PORTAL_EMAIL_RATE_LIMIT"] = str(scenario.our_rate)
    env.update(scenario.extra_env)
    worker = start_worker(concurrency, env)
    try:
        client = Client()
        client.force_login(admin_user)
        activate = reverse("admin:invitations_portal_activate", args=[practice.pk])
        started = time.perf_counter()
        cpu_before = cpu_seconds(process_tree(worker.pid)), cpu_seconds([standin.pid])
        response = client.post(activate)
        assert response.status_code == 302, response.status_code
        run = BulkRun.objects.filter(practice=practice).latest("created_at")
        progress_url = reverse("admin:invitations_bulkrun_progress_json", args=[run.pk])
        shown_done_early = False
        while True:
            progress = client.get(progress_url).json()
            if progress["finished"]:
                taken = control(url, "stats")["messages"]
                shown_done_early = taken < progress["targeted"] - progress["failed"]
                break
            if time.perf_counter() - started > 3600:
                raise SystemExit(f"{scenario.name}: not finished after an hour")
            time.sleep(0.25)
        elapsed = time.perf_counter() - started
        pids = process_tree(worker.pid)
        peaks = [peak_memory_mb(pid) for pid in pids]
        worker_cpu = cpu_seconds(pids) - cpu_before[0]
        standin_cpu = cpu_seconds([standin.pid]) - cpu_before[1]
        stats = control(url, "stats")
    finally:
        worker.terminate()
        worker.wait(timeout=60)
        stop(standin)
    run.refresh_from_db()
    statuses = dict(Invitation.objects.filter(practice=practice).values_list("status").annotate(n=Count("pk")).order_by())
    log = (Path(os.environ["PORTAL_VAR_DIR"]) / "bench-worker.log").read_text()
    chunks_cut = log.count("TimeLimitExceeded") + log.count("soft time limit reached")
    attempts = BulkRunChunk.objects.filter(run=run).aggregate(n=Sum("attempts"), chunks=Count("pk"))
    span = (stats["last_accepted_at"] or 0) - (stats["first_accepted_at"] or 0)
    return {
        "name": scenario.name, "target": scenario.target,
        "compare_to_serial": scenario.provider == "postmark" and scenario.latency == 0.08 and not scenario.rate_limit, "targeted": run.targeted, "seconds": elapsed,
        "rate": run.targeted / elapsed if elapsed else 0.0,
        "sustained": stats["messages"] / span if span > 0 else 0.0,
        "requests": stats["requests"], "messages": stats["messages"], "throttled": stats["throttled"],
        "twice": stats["recipients_emailed_twice"], "sent": statuses.get("sent", 0), "failed": statuses.get("failed", 0),
        "shown_done_early": shown_done_early, "chunks_cut": chunks_cut,
        "worker_peak_mb": max(peaks), "worker_cpu_s": worker_cpu, "standin_cpu_s": standin_cpu,
        "max_in_flight": stats["max_in_flight"], "chunks": attempts["chunks"], "attempts": attempts["n"] or 0,
    }


def print_table(results: list[dict], serial_rate: Optional[float]) -> None:
    print()
    if serial_rate:
        print(f"One connection, one invitation at a time (80 ms a call): {serial_rate:,.1f}/s "
              f"({100_000 / serial_rate / 60:,.0f} minutes for 100,000)")
    print("| scenario | invitations | time | invitations/s | requests (429s) | failed | emailed twice | done early | "
          "chunks cut | worker peak | target |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        throttled = f"{r['requests']:,} ({r['throttled']:,}, {100 * r['throttled'] / max(r['requests'], 1):.1f} %)"
        rate = f"{r['rate']:,.1f}/s" + (f" (sustained {r['sustained']:,.1f}/s)" if r["targeted"] <= 10_000 else "")
        if serial_rate and r["compare_to_serial"]:
            rate += f", {r['rate'] / serial_rate:,.0f}x one connection"
        print(f"| {r['name']} | {r['targeted']:,} | {r['seconds']:,.1f} s | {rate} | {throttled} | {r['failed']:,} | "
              f"{r['twice']:,} | {'yes' if r['shown_done_early'] else 'no'} | {r['chunks_cut']} | "
              f"{r['worker_peak_mb']:.0f} MB | {r['target']} |")
    print()
    for r in results:
        print(f"{r['name']}: worker CPU {r['worker_cpu_s']:.0f} s, stand-in CPU {r['standin_cpu_s']:.0f} s, "
              f"most calls in flight at once {r['max_in_flight']}, {r['chunks']} chunks in {r['attempts']} attempts")
