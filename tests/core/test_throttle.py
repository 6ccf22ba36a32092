"""Request limits (core.throttle): counted before they decide, in Redis and in the database.

The concurrency tests run 40 requests at once through real connections (PostgreSQL rows, Redis
keys): exactly the limit get through, whatever the interleaving.
"""

import time

import pytest
import time_machine

from core import throttle
from tests.clock import NOW
from tests.conftest import count_limits_in
from tests.threads import run_together

STORES = [
    pytest.param("database", marks=pytest.mark.django_db(transaction=True), id="database"),
    pytest.param("redis", marks=[pytest.mark.redis, pytest.mark.django_db], id="redis"),
]


@pytest.fixture(params=STORES)
def throttle_store(request, monkeypatch):
    return count_limits_in(request.param, monkeypatch)


def test_it_counts_each_attempt_and_refuses_past_the_limit(throttle_store):
    attempts = [throttle.attempt("test-login", "10.0.0.1", limit=3, window_seconds=60) for _ in range(5)]
    assert [a.allowed for a in attempts] == [True, True, True, False, False]
    assert [a.count for a in attempts] == [1, 2, 3, 4, 5]
    assert throttle.attempt("test-login", "10.0.0.2", limit=3, window_seconds=60).allowed  # another key


def test_a_released_attempt_gives_its_place_back(throttle_store):
    first = throttle.attempt("test-login", "desk", limit=2, window_seconds=60)
    first.release()
    assert throttle.count("test-login", "desk", window_seconds=60) == 0
    assert [throttle.attempt("test-login", "desk", limit=2, window_seconds=60).allowed for _ in range(3)] == [True, True, False]


def test_a_release_after_the_window_turned_leaves_the_new_window_alone(throttle_store):
    with time_machine.travel(NOW.replace(second=58), tick=False) as clock:
        old = throttle.attempt("test-login", "desk", limit=5, window_seconds=60)
        clock.shift(5)  # the next minute's window
        throttle.attempt("test-login", "desk", limit=5, window_seconds=60)
        old.release()
        assert throttle.count("test-login", "desk", window_seconds=60) == 1


def test_clear_forgets_the_counts(throttle_store):
    for _ in range(4):
        throttle.attempt("test-login", "desk", limit=3, window_seconds=60)
    throttle.clear("test-login", "desk")
    assert throttle.attempt("test-login", "desk", limit=3, window_seconds=60).count == 1


def test_one_turn_per_interval(throttle_store):
    assert throttle.take_turn("test-slow", "desk", seconds=0.3) is True
    assert throttle.take_turn("test-slow", "desk", seconds=0.3) is False
    assert throttle.take_turn("test-slow", "other", seconds=0.3) is True
    time.sleep(0.35)  # Redis expires keys on its own clock, so the wait is real
    assert throttle.take_turn("test-slow", "desk", seconds=0.3) is True
    throttle.clear("test-slow", "desk")
    assert throttle.take_turn("test-slow", "desk", seconds=60) is True


CONCURRENT_STORES = [
    pytest.param("database", marks=[pytest.mark.postgres, pytest.mark.django_db(transaction=True)], id="postgres"),
    pytest.param("redis", marks=[pytest.mark.redis, pytest.mark.django_db], id="redis"),
]


@pytest.mark.parametrize("throttle_store", CONCURRENT_STORES, indirect=True)
def test_forty_attempts_at_once_let_exactly_the_limit_through(throttle_store):
    results = run_together(lambda: throttle.attempt("test-burst", "one-account", limit=10, window_seconds=300).allowed, 40)
    assert results.count(True) == 10
    assert throttle.count("test-burst", "one-account", window_seconds=300) == 40


@pytest.mark.parametrize("throttle_store", CONCURRENT_STORES, indirect=True)
def test_twenty_callers_at_once_get_one_turn(throttle_store):
    results = run_together(lambda: throttle.take_turn("test-burst", "one-account", seconds=30), 20)
    assert results.count(True) == 1


def test_clearing_an_account_forgets_its_count_from_every_address(throttle_store):
    for address in ("10.0.0.1", "10.0.0.2"):
        for _ in range(3):
            throttle.attempt("test-pair", ("desk", address), limit=3, window_seconds=60)
    throttle.attempt("test-pair", ("colleague", "10.0.0.1"), limit=3, window_seconds=60)
    throttle.clear("test-pair", ("desk",))
    assert throttle.attempt("test-pair", ("desk", "10.0.0.1"), limit=3, window_seconds=60).count == 1
    assert throttle.attempt("test-pair", ("desk", "10.0.0.2"), limit=3, window_seconds=60).count == 1
    assert throttle.attempt("test-pair", ("colleague", "10.0.0.1"), limit=3, window_seconds=60).count == 2
