"""The peer's loop, measured on this machine: django-invitations (jazzband), the package the product is
compared with, inviting one address at a time the way its admin and views do (`Invitation.create`, then
`send_invitation(request)`, which renders and sends the email inside the request).

    .venv/bin/python bench/peer.py                 # --count 5000 --runs 3

It installs the peer into its own environment (var/bench-peer/venv: Django 5.2 and django-invitations
from PyPI; nothing of it is committed or imported by the product), writes a minimal project beside it,
and runs the loop against this machine's PostgreSQL (a database `bench_peer`, made afresh each run) with
Django's locmem email backend, which builds each message as our bench backend does and sends nothing.
It prints each run's rate and the median, the figure the README's "Cost per invitation" compares
Activate Now with.
"""

import argparse
import os
import statistics
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HOME = ROOT / "var" / "bench-peer"
VENV = HOME / "venv"
PROJECT = HOME / "project"
PEER = ["Django>=5.2,<5.3", "django-invitations>=2.1,<3", "psycopg[binary]>=3.2,<4"]

SETTINGS = """
import os
SECRET_KEY = "bench-peer-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["*"]
INSTALLED_APPS = [
    "django.contrib.auth", "django.contrib.contenttypes", "django.contrib.sessions", "django.contrib.sites",
    "invitations",
]
SITE_ID = 1
ROOT_URLCONF = "peer_urls"
DATABASES = {"default": {
    "ENGINE": "django.db.backends.postgresql", "NAME": os.environ.get("PEER_DB", "bench_peer"),
    "USER": "postgres", "HOST": "127.0.0.1", "PORT": "5432",
}}
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
DEFAULT_FROM_EMAIL = "portal@example.test"
USE_TZ = True
TEMPLATES = [{"BACKEND": "django.template.backends.django.DjangoTemplates", "APP_DIRS": True, "OPTIONS": {}}]
"""
URLS = """
from django.urls import include, path
urlpatterns = [path("invitations/", include("invitations.urls", namespace="invitations"))]
"""
LOOP = """
import sys, time
import django
django.setup()
from django.core import mail
from django.core.management import call_command
from django.test import RequestFactory
from invitations.models import Invitation

count = int(sys.argv[1])
call_command("migrate", verbosity=0)
Invitation.objects.all().delete()
request = RequestFactory().get("/")
mail.outbox = []
started = time.perf_counter()
for n in range(count):
    invitation = Invitation.create(f"patient{n}@example.test")
    invitation.send_invitation(request)
    if n % 500 == 499:
        mail.outbox.clear()  # the locmem backend keeps every message; a real backend does not
elapsed = time.perf_counter() - started
assert Invitation.objects.filter(sent__isnull=False).count() == count
print(f"{count / elapsed:.1f}")
"""


def ensure_peer() -> Path:
    python = VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *PEER], check=True)
    PROJECT.mkdir(parents=True, exist_ok=True)
    (PROJECT / "peer_settings.py").write_text(textwrap.dedent(SETTINGS))
    (PROJECT / "peer_urls.py").write_text(textwrap.dedent(URLS))
    (PROJECT / "peer_loop.py").write_text(textwrap.dedent(LOOP))
    return python


def fresh_database(name: str) -> None:
    for statement in (f"DROP DATABASE IF EXISTS {name}", f"CREATE DATABASE {name}"):
        subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-q", "-c", statement], check=True)


def measure(count: int, runs: int) -> list[float]:
    python = ensure_peer()
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="peer_settings", PYTHONPATH=str(PROJECT), PEER_DB="bench_peer")
    rates = []
    for run in range(runs):
        fresh_database("bench_peer")
        done = subprocess.run([str(python), "peer_loop.py", str(count)], cwd=PROJECT, env=env, check=True,
                              capture_output=True, text=True)
        rates.append(float(done.stdout.strip().splitlines()[-1]))
        print(f"django-invitations, run {run + 1}: {count:,} invitations one at a time, {rates[-1]:,.0f}/s", flush=True)
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=5000, help="invitations per run (at least 1)")
    parser.add_argument("--runs", type=int, default=3, help="runs; the median is reported (at least 1)")
    args = parser.parse_args()
    if args.count < 1 or args.runs < 1:
        parser.error("--count and --runs must be at least 1")
    rates = measure(args.count, args.runs)
    print(f"django-invitations loop: median {statistics.median(rates):,.0f}/s over {args.runs} runs of {args.count:,}")


if __name__ == "__main__":
    main()
