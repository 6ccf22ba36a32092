"""Settings for Practice Portal.

Everything that differs between a laptop and production comes from the environment
(12-factor, django-environ). With nothing set, the project runs on embedded defaults:
SQLite, a Celery broker on the filesystem and emails written as files, all under ``var/``.
The README has the table of variables.
"""

import json
from pathlib import Path

import environ
from celery.schedules import crontab

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
if (BASE_DIR / ".env").is_file():
    env.read_env(str(BASE_DIR / ".env"))

VAR_DIR = Path(env.str("PORTAL_VAR_DIR", default=str(BASE_DIR / "var")))
# The embedded defaults (SQLite, filesystem broker, mail files) all live under var/.
for _folder in ("", "mail", "media", "static", "celery/queue", "celery/processed", "celery/results", "celery/control"):
    (VAR_DIR / _folder).mkdir(parents=True, exist_ok=True)

# --- Core -----------------------------------------------------------------------------

DEBUG = env.bool("DJANGO_DEBUG", default=False)

_INSECURE_KEY_PREFIX = "insecure-dev-only-"
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="")
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=[])

# What production is missing. The settings stay importable so that maintenance commands
# (makemigrations, migrate, check) work anywhere; everything that serves traffic or does work
# (WSGI, ASGI, Celery worker and beat) refuses to start while this list is not empty
# (portal_project.checks). A missing key is left empty: Django refuses any signing with it.
PRODUCTION_CONFIG_ERRORS: list[str] = []
if DEBUG:
    SECRET_KEY = SECRET_KEY or _INSECURE_KEY_PREFIX + "practice-portal-demo"
    ALLOWED_HOSTS = ALLOWED_HOSTS or ["localhost", "127.0.0.1", "[::1]", "testserver"]
else:
    if len(SECRET_KEY) < 32 or SECRET_KEY.startswith(_INSECURE_KEY_PREFIX):
        SECRET_KEY = ""
        PRODUCTION_CONFIG_ERRORS.append(
            "DJANGO_SECRET_KEY must be set to a random value of at least 32 characters when "
            "DJANGO_DEBUG is off. Generate one with: python -c \"import secrets; "
            "print(secrets.token_urlsafe(50))\""
        )
    if not ALLOWED_HOSTS:
        PRODUCTION_CONFIG_ERRORS.append(
            "DJANGO_ALLOWED_HOSTS must list the host names this site is served on "
            "(comma-separated) when DJANGO_DEBUG is off."
        )

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "anymail",
    # Two-factor sign-in for staff (patients/staff_auth/two_factor.py): authenticator apps and recovery codes.
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "core",
    "patients",
    "invitations",
    "notifications",
    "portal",
    "demo",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "core.hostile_input.RejectNulCharacters",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    # Staff sign-in (patients/staff_auth): idle sessions end; the admin waits for the second factor.
    "patients.staff_auth.sessions.IdleTimeout",
    "patients.staff_auth.two_factor.RequireSecondFactor",
    "patients.timezones.PracticeTimeZoneMiddleware",
    # The patient pages in the patient's language (portal/language.py); the admin stays English.
    "portal.language.PatientLanguageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
]

ROOT_URLCONF = "portal_project.urls"
WSGI_APPLICATION = "portal_project.wsgi.application"
ASGI_APPLICATION = "portal_project.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "portal.records.context",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------

DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'portal.sqlite3'}"),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The demo runs web, worker and beat against one SQLite file: WAL lets readers and one
    # writer work together, IMMEDIATE transactions take the write lock up front instead of
    # failing half way with "database is locked".
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
        }
    )
else:
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("DATABASE_CONN_MAX_AGE", default=60))
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        # PostgreSQL's JIT compiles the dashboard's and Activate Now's big counting queries for
        # longer than it then saves (0.6 s of a 1.5 s query at 100,000 patients); this app's
        # queries are short or index-driven, so it is off for its connections.
        options = DATABASES["default"].setdefault("OPTIONS", {})
        options["options"] = " ".join(filter(None, [options.get("options", ""), "-c jit=off"]))

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache --------------------------------------------------------------------------------

# Shared by every process in every mode: CACHE_URL, else the broker's Redis, else a database table
# (`manage.py createcachetable`, which bin/run runs). Rate limits do not depend on it: they count
# in Redis or the database themselves (core.throttle).
_broker = env.str("CELERY_BROKER_URL", default="")
CACHES = {
    "default": env.cache(
        "CACHE_URL", default=_broker if _broker.startswith(("redis://", "rediss://")) else "dbcache://portal_cache"
    )
}

# --- Auth -----------------------------------------------------------------------------

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# --- Internationalisation ---------------------------------------------------------------

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True
# The languages patients are served in: everything a patient receives or sees (emails, texts, the
# portal's pages) follows their preferred language; the staff admin stays English. Adding a language
# is one line here plus its catalog in locale/<code>/LC_MESSAGES/django.po (README "Languages").
LANGUAGES = [
    ("en", "English"),
    ("es", "Español"),
]
LOCALE_PATHS = [BASE_DIR / "locale"]
# The patient pages remember a chosen language in this cookie (and on the account once registered).
LANGUAGE_COOKIE_NAME = "portal_language"
LANGUAGE_COOKIE_AGE = 365 * 24 * 60 * 60
LANGUAGE_COOKIE_SAMESITE = "Lax"
# One date-time format on every page: "Dec. 7, 2026, 8:11 AM" (portal_project/formats/en/formats.py).
FORMAT_MODULE_PATH = ["portal_project.formats"]

# --- Static and uploaded files -------------------------------------------------------------

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
MEDIA_URL = "media/"
MEDIA_ROOT = Path(env.str("MEDIA_ROOT", default=str(VAR_DIR / "media")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}

# CSV imports of 10,000+ rows are uploaded as files; the preview keeps them on disk.
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
PATIENT_IMPORT_MAX_BYTES = env.int("PATIENT_IMPORT_MAX_BYTES", default=20 * 1024 * 1024)

# --- Security (check --deploy is clean when DJANGO_DEBUG is off) -------------------------

SESSION_COOKIE_SECURE = env.bool("DJANGO_SECURE_COOKIES", default=not DEBUG)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
LANGUAGE_COOKIE_SECURE = SESSION_COOKIE_SECURE
SESSION_COOKIE_HTTPONLY = True
# Signed-in sessions end when idle (patients/staff_auth/sessions.py): staff after their practice's
# setting (this default for anyone without one), patients after 15 minutes; everyone 12 hours after
# signing in. Sessions used to last two weeks.
PORTAL_STAFF_IDLE_MINUTES = env.int("PORTAL_STAFF_IDLE_MINUTES", default=30)
PORTAL_PATIENT_IDLE_MINUTES = env.int("PORTAL_PATIENT_IDLE_MINUTES", default=15)
PORTAL_SESSION_MAX_HOURS = env.int("PORTAL_SESSION_MAX_HOURS", default=12)
SESSION_COOKIE_AGE = PORTAL_SESSION_MAX_HOURS * 3600
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=not DEBUG)
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
SECURE_HSTS_PRELOAD = env.bool("DJANGO_SECURE_HSTS_PRELOAD", default=False)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

# Content-Security-Policy (django-csp): scripts only from this site or with the request's nonce
# (templates: <script nonce="{{ request.csp_nonce }}">), no plugins, no framing, forms post here.
# Styles allow inline: the admin's templates use style attributes. Images may come from https
# hosts: a practice's invitation template can show its own logo from its website.
from csp.constants import NONCE, NONE, SELF  # noqa: E402

CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF, NONCE],
        "style-src": [SELF, "'unsafe-inline'"],
        "img-src": [SELF, "data:", "https:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    },
}
if env.bool("DJANGO_BEHIND_TLS_PROXY", default=False):
    # Only behind a proxy that sets this header itself and strips it from clients.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# --- Email ----------------------------------------------------------------------------

DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="Practice Portal <portal@localhost>")
SERVER_EMAIL = env.str("SERVER_EMAIL", default=DEFAULT_FROM_EMAIL)

# EMAIL_PROVIDER names an anymail backend (postmark, mailgun, sendgrid, amazon_ses, ...);
# its settings come from ANYMAIL_* variables, e.g. ANYMAIL_POSTMARK_SERVER_TOKEN.
EMAIL_PROVIDER = env.str("EMAIL_PROVIDER", default="")


def _anymail_value(key: str, value: str):
    """Environment strings as anymail wants them: JSON for the boto3 parameter dicts (Amazon SES),
    a number for the HTTP timeout, the rest as given."""
    if key.endswith("_PARAMS") or value.lstrip().startswith("{"):
        return json.loads(value)
    if key == "REQUESTS_TIMEOUT":
        return float(value)
    return value


ANYMAIL = {
    key.removeprefix("ANYMAIL_"): _anymail_value(key.removeprefix("ANYMAIL_"), value)
    for key, value in env.ENVIRON.items()
    if key.startswith("ANYMAIL_") and value
}
# No provider call may outlast a chunk's deadline by much (see PORTAL_BULK_SEND_SECONDS).
ANYMAIL.setdefault("REQUESTS_TIMEOUT", 30.0)
if EMAIL_PROVIDER == "amazon_ses":
    # boto3 would wait 60 s per call and retry throttled calls on its own, holding a sender for
    # minutes; our limiter and retries are in charge instead.
    _ses_client = ANYMAIL.setdefault("AMAZON_SES_CLIENT_PARAMS", {})
    _ses_client.setdefault("config", {})
    _ses_client["config"].setdefault("connect_timeout", 10)
    _ses_client["config"].setdefault("read_timeout", ANYMAIL["REQUESTS_TIMEOUT"])
    _ses_client["config"].setdefault("retries", {"mode": "standard", "total_max_attempts": 1})
if EMAIL_PROVIDER:
    EMAIL_BACKEND = f"anymail.backends.{EMAIL_PROVIDER}.EmailBackend"
    if not DEBUG and not ANYMAIL.get("WEBHOOK_SECRET"):
        # Without it anymail accepts anonymous delivery reports, and anyone could fail
        # invitations or opt addresses out.
        PRODUCTION_CONFIG_ERRORS.append(
            "ANYMAIL_WEBHOOK_SECRET must be set (as user:password) when EMAIL_PROVIDER is set; "
            "use the same credentials in the email service's tracking webhook URL."
        )
else:
    EMAIL_BACKEND = env.str(
        "EMAIL_BACKEND", default="django.core.mail.backends.filebased.EmailBackend"
    )
EMAIL_FILE_PATH = VAR_DIR / "mail"

# Temporary email-service errors: retries with exponential backoff from this base, then failed.
PORTAL_SEND_MAX_RETRIES = env.int("PORTAL_SEND_MAX_RETRIES", default=6)
PORTAL_SEND_RETRY_BASE_SECONDS = env.float("PORTAL_SEND_RETRY_BASE_SECONDS", default=30.0)
# A worker that died holding a send claim or a bulk chunk: another takes over after these leases.
PORTAL_SEND_CLAIM_LEASE_SECONDS = env.int("PORTAL_SEND_CLAIM_LEASE_SECONDS", default=600)
PORTAL_BULK_CHUNK_LEASE_SECONDS = env.int("PORTAL_BULK_CHUNK_LEASE_SECONDS", default=600)
# Bulk runs record sent emails at least every this many messages (or 2 seconds): the most a
# killed worker can repeat.
PORTAL_BULK_MARK_SENT_EVERY = env.int("PORTAL_BULK_MARK_SENT_EVERY", default=100)

# Sending to the provider (core.sending): calls in flight at once per bulk chunk; the provider
# account's rate shared by every worker (messages per second, 0 = none of ours; the provider's
# 429 answers still slow everyone down) and how many may go back to back; recipients per batch
# call where the provider has batches (Mailgun, SendGrid; 1 = off); where the shared rate lives.
PORTAL_SEND_CONCURRENCY = env.int("PORTAL_SEND_CONCURRENCY", default=16)
PORTAL_EMAIL_RATE_LIMIT = env.float("PORTAL_EMAIL_RATE_LIMIT", default=0.0)
PORTAL_EMAIL_RATE_BURST = env.float("PORTAL_EMAIL_RATE_BURST", default=1.0)
PORTAL_EMAIL_BATCH_SIZE = env.int("PORTAL_EMAIL_BATCH_SIZE", default=500)
PORTAL_RATE_LIMIT_STORE = env.str("PORTAL_RATE_LIMIT_STORE", default="")

PORTAL_BASE_URL = env.str("PORTAL_BASE_URL", default="http://localhost:8000").rstrip("/")

# --- Text messages (core.sending.transports.text) ----------------------------------------

# "" writes each text as a file under var/texts/ (the embedded default); "twilio" sends through
# Twilio's official library with the account below (Twilio's webhooks are signed with its token).
SMS_PROVIDER = env.str("SMS_PROVIDER", default="").strip().lower()
TWILIO_ACCOUNT_SID = env.str("TWILIO_ACCOUNT_SID", default="")
TWILIO_AUTH_TOKEN = env.str("TWILIO_AUTH_TOKEN", default="")
# The sender: a messaging service (MG..., preferred: it picks among its numbers) or one number.
TWILIO_MESSAGING_SERVICE_SID = env.str("TWILIO_MESSAGING_SERVICE_SID", default="")
TWILIO_FROM_NUMBER = env.str("TWILIO_FROM_NUMBER", default="")
TWILIO_API_URL = env.str("TWILIO_API_URL", default="https://api.twilio.com").rstrip("/")
TWILIO_TIMEOUT = env.float("TWILIO_TIMEOUT", default=15.0)  # seconds one API call may take
# The account's sending rate, shared by every worker (messages per second): a US long code
# sends about 1 a second, a messaging service with more numbers or a short code more.
PORTAL_SMS_RATE_LIMIT = env.float("PORTAL_SMS_RATE_LIMIT", default=1.0 if SMS_PROVIDER == "twilio" else 0.0)
PORTAL_SMS_RATE_BURST = env.float("PORTAL_SMS_RATE_BURST", default=1.0)
PORTAL_SMS_CONCURRENCY = env.int("PORTAL_SMS_CONCURRENCY", default=8)  # calls in flight per bulk chunk
if SMS_PROVIDER not in ("", "twilio"):
    PRODUCTION_CONFIG_ERRORS.append(f'SMS_PROVIDER must be "twilio" or empty (texts written to files), not "{SMS_PROVIDER}".')
elif SMS_PROVIDER == "twilio":
    # A missing setting would fail every text; web, worker and beat refuse to start instead.
    for _name in ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN"):
        if not globals()[_name]:
            PRODUCTION_CONFIG_ERRORS.append(f"{_name} must be set when SMS_PROVIDER is twilio.")
    if not (TWILIO_MESSAGING_SERVICE_SID or TWILIO_FROM_NUMBER):
        PRODUCTION_CONFIG_ERRORS.append(
            "TWILIO_MESSAGING_SERVICE_SID (MG...) or TWILIO_FROM_NUMBER (+1...) must be set when SMS_PROVIDER is twilio."
        )

# --- Celery ---------------------------------------------------------------------------

CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://")
if CELERY_BROKER_URL.startswith("filesystem://"):
    _queue_dir = VAR_DIR / "celery" / "queue"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_queue_dir),
        "data_folder_out": str(_queue_dir),
        "processed_folder": str(VAR_DIR / "celery" / "processed"),
        "control_folder": str(VAR_DIR / "celery" / "control"),
        "store_processed": False,
    }
    _default_result_backend = f"file://{VAR_DIR / 'celery' / 'results'}"
else:
    # Redis: a task is redelivered if it is not acknowledged within this time. It must be
    # longer than the longest task (see CELERY_TASK_TIME_LIMIT).
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
    _default_result_backend = CELERY_BROKER_URL
CELERY_RESULT_BACKEND = env.str("CELERY_RESULT_BACKEND", default=_default_result_backend)
CELERY_TASK_IGNORE_RESULT = True  # tasks record their effects in the database
CELERY_RESULT_EXPIRES = 3600
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_TIMEZONE = "UTC"
# At-least-once delivery: acknowledge after the task ran, redeliver if the worker died.
# Every task is idempotent (it claims its rows in the database first), so a redelivery
# does nothing twice.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=240)
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=300)
# A bulk chunk starts no new email this many seconds after its task began, so the last call (up to
# the provider timeout) and the bookkeeping end well inside the soft time limit; the rest of the
# chunk is handed on at once.
PORTAL_BULK_SEND_SECONDS = env.float(
    "PORTAL_BULK_SEND_SECONDS",
    default=max(CELERY_TASK_SOFT_TIME_LIMIT * 0.25, CELERY_TASK_SOFT_TIME_LIMIT - float(ANYMAIL["REQUESTS_TIMEOUT"]) - 30),
)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Two queues (core.queue): the front desk's single sends, resends, alerts and reset emails on
# "interactive"; Activate Now's planning and chunks and the heavy scheduled jobs on "bulk". Every
# worker consumes both, "interactive" first (the order below; on Redis strictly: a worker takes an
# interactive task whenever one waits), so a single invitation is sent within seconds while a bulk
# run of 100,000 is sending. Any task not routed here is interactive.
from kombu import Exchange, Queue  # noqa: E402

# Each queue with its own exchange and routing key: a bare Queue("bulk") is bound to the default
# exchange's routing key, and its messages would land in the default queue.
CELERY_TASK_QUEUES = tuple(Queue(name, Exchange(name, type="direct"), routing_key=name) for name in ("interactive", "bulk"))
CELERY_TASK_DEFAULT_QUEUE = "interactive"
CELERY_TASK_ROUTES = {
    name: {"queue": "bulk"}
    for name in (
        "invitations.plan_bulk_run",
        "invitations.process_bulk_chunk",
        "invitations.resume_bulk_runs",
        "invitations.start_monthly_reinvites",
        "invitations.expire_due",
        "invitations.refresh_figures",
        "invitations.refresh_practice_figures",
        "notifications.send_due_digests",
        "notifications.send_digest",
    )
}
if not CELERY_BROKER_URL.startswith("filesystem://"):
    CELERY_BROKER_TRANSPORT_OPTIONS["queue_order_strategy"] = "priority"
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celery" / "beat-schedule")

# Scheduled jobs. Each is a thin task that sweeps rows with a due time; later work adds
# entries here. Exactly one beat process runs them.
CELERY_BEAT_SCHEDULE: dict[str, dict] = {
    # -- ops --
    "worker-heartbeat": {  # any worker records that it is alive (system status, /healthz)
        "task": "portal.heartbeat",
        "schedule": 60.0,
        "options": {"expires": 55},
    },
    # -- invitations --
    "invitations-requeue-unsent": {  # sends whose task was lost (e.g. the broker was down)
        "task": "invitations.requeue_unsent",
        "schedule": crontab(minute="*/5"),
    },
    "invitations-expire-due": {  # marks run-out links expired in bulk, so lists and counts are right
        "task": "invitations.expire_due",
        "schedule": crontab(minute="*/15"),
    },
    "invitations-resume-bulk-runs": {  # re-enqueues Activate Now chunks a dead worker left behind
        "task": "invitations.resume_bulk_runs",
        "schedule": crontab(minute="*/5"),
    },
    "invitations-monthly-reinvites": {  # each practice's monthly re-invite, on its day in its time zone
        "task": "invitations.start_monthly_reinvites",
        "schedule": crontab(minute=20),
    },
    "invitations-end-representative-access": {  # parents' access ends at the age of majority, caregivers' at their end date
        "task": "invitations.end_representative_access",
        "schedule": crontab(minute=30),
    },
    "invitations-refresh-figures": {  # recounts the portal dashboard's stored figures of each practice
        "task": "invitations.refresh_figures",
        "schedule": crontab(minute="*/10"),
    },
    # -- notifications --
    "notifications-sweep": {  # 14-day and 48-hour alerts from stored due times
        "task": "notifications.sweep",
        "schedule": crontab(minute="*/15"),
    },
    "notifications-daily-digests": {  # each office's 7:00 digest, caught up if beat was down
        "task": "notifications.send_due_digests",
        "schedule": crontab(minute=5),
    },
}

# --- Logging: no health information is ever logged; patient ids only. ---------------------

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    # Registration and reset links, and search terms, are redacted from every line (core.redaction).
    "filters": {"redact": {"()": "core.redaction.RedactSecrets"}, "quiet_refusals": {"()": "core.redaction.QuietRefusals"}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "server": {"()": "django.utils.log.ServerFormatter", "format": "[{server_time}] {message}", "style": "{"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["redact", "quiet_refusals"]},
        # The development server's access log ("GET /invite/... 200").
        "server": {"class": "logging.StreamHandler", "formatter": "server", "filters": ["redact"]},
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        # Django's own "django" handlers (console in debug, admin emails) would write each of its
        # lines a second time next to the root's: its records go to the root's handler only.
        "django": {"handlers": [], "level": "INFO", "propagate": True},
        "django.db.backends": {"level": "WARNING"},
        # The twilio library logs every request and response header at INFO.
        "twilio.http_client": {"level": "WARNING"},
        "django.server": {"handlers": ["server"], "level": "INFO", "propagate": False},
    },
}

LOGIN_URL = "admin:login"
# The name authenticator apps show beside the account.
OTP_TOTP_ISSUER = env.str("OTP_TOTP_ISSUER", default="Practice Portal")
