"""gunicorn's settings for this project: `gunicorn -c portal_project/gunicorn.conf.py portal_project.wsgi`.

The access log is on (to standard output) and goes through the same redaction as the app's own
logs, so registration and reset links and search terms never reach it (core.redaction).
"""

accesslog = "-"
errorlog = "-"
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"redact": {"()": "core.redaction.RedactSecrets"}},
    "formatters": {
        "generic": {"format": "%(asctime)s [%(process)d] [%(levelname)s] %(message)s", "datefmt": "[%Y-%m-%d %H:%M:%S %z]"},
    },
    "handlers": {
        "access": {"class": "logging.StreamHandler", "formatter": "generic", "filters": ["redact"], "stream": "ext://sys.stdout"},
        "error": {"class": "logging.StreamHandler", "formatter": "generic", "filters": ["redact"], "stream": "ext://sys.stderr"},
    },
    "root": {"level": "INFO", "handlers": ["error"]},
    "loggers": {
        "gunicorn.access": {"level": "INFO", "handlers": ["access"], "propagate": False},
        "gunicorn.error": {"level": "INFO", "handlers": ["error"], "propagate": False},
    },
}
