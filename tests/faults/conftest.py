from tests.workers import celery_worker, mail_dir, start_worker  # noqa: F401  (fixtures)
