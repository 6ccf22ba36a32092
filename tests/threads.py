"""Several threads started together, for the tests of what holds under concurrency (claims, limits,
counters). Each thread uses its own database connection and closes it."""

import threading

from django.db import connection


def run_together(target, count: int = 4) -> list:
    """Run `target` in `count` threads (or each callable of a list in its own), released at one
    barrier so they really overlap; their results in the order they finished. An exception in any
    thread fails the calling test."""
    targets = target if isinstance(target, list) else [target] * count
    barrier = threading.Barrier(len(targets))
    results, errors = [], []

    def worker(fn):
        try:
            barrier.wait(timeout=10)
            results.append(fn())
        except Exception as exc:  # noqa: BLE001 - surfaced below, in the test's thread
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(fn,)) for fn in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not errors, errors
    return results
