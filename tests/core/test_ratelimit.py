"""The provider account's rate, shared by every sender: slots spaced at our rate, a burst after a
quiet spell, nothing reserved past a deadline, a 429 that pauses everyone and teaches the account:
a rare one at our rate (jitter) to keep near it, frequent ones a lower rate, which recovers with calm. Both stores: the database (embedded defaults) and Redis."""

import threading
import time

import pytest
import time_machine

from core.sending import ratelimit
from core.sending.ratelimit import BucketState, make
from tests.conftest import redis_url

T0 = 1_900_000_000.0  # a fixed wall clock: the database store reads the worker's clock


def approx(values):
    return pytest.approx(values, abs=1e-5)  # seconds as floats near 1.9e9 keep ~0.1 µs


@pytest.fixture
def clock():
    with time_machine.travel(T0, tick=False) as traveller:
        yield traveller


def database(rate: float, burst: float = 1.0):
    return make("test-account", rate=rate, burst=burst, store="database")


def in_redis(rate: float, burst: float = 1.0):
    return make("test-account", rate=rate, burst=burst, store=redis_url())


@pytest.fixture
def fresh_redis():
    in_redis(1).reset()
    yield
    in_redis(1).reset()


# -- the rules, on the database store under a frozen clock: exact slots ------------------------


@pytest.mark.django_db
def test_slots_are_spaced_at_our_rate(clock):
    limiter = database(rate=10)
    assert [limiter.reserve() for _ in range(4)] == approx([0.0, 0.1, 0.2, 0.3])


@pytest.mark.django_db
def test_a_burst_goes_at_once_after_a_quiet_spell_then_the_rate_holds(clock):
    limiter = database(rate=10, burst=3)
    assert [limiter.reserve() for _ in range(5)] == approx([0.0, 0.0, 0.0, 0.1, 0.2])
    clock.shift(10)  # quiet: the bucket fills up again, but not beyond the burst
    assert [limiter.reserve() for _ in range(4)] == approx([0.0, 0.0, 0.0, 0.1])


@pytest.mark.django_db
def test_a_batch_costs_one_slot_per_recipient(clock):
    limiter = database(rate=10)
    assert limiter.reserve(cost=5) == 0.0
    assert limiter.reserve() == approx(0.5)


@pytest.mark.django_db
def test_a_slot_beyond_the_callers_deadline_reserves_nothing(clock):
    limiter = database(rate=2)
    assert [limiter.reserve() for _ in range(3)] == approx([0.0, 0.5, 1.0])
    assert limiter.reserve(max_wait=1.2) is None  # the next slot is 1.5 s away
    assert limiter.reserve(max_wait=1.2) is None  # ... and still is: nothing was taken
    assert limiter.reserve(max_wait=2) == approx(1.5)


def sent_at_our_rate(limiter, clock, seconds: float) -> None:
    """Reserve and go at the rate in force for `seconds` (the calls a 429's share is judged against)."""
    end = time.time() + seconds
    while time.time() < end:
        clock.shift(limiter.reserve())


def a_real_limit(limiter) -> None:
    """The provider's limit is below ours: its 429s come thick (a burst of calls refused together)."""
    for _ in range(5):
        limiter.slow_down(1)


#: The rate a burst of 429s at our rate of 10 teaches: the first few are judged jitter (the margin
#: of 5 %) until their share shows a real limit, which cuts 30 % from the rate then in force.
LEARNED_FROM_10 = 10 * ratelimit.JITTER_MARGIN * ratelimit.DECREASE_TO


@pytest.mark.django_db
def test_a_429_pauses_every_sender_of_the_account_and_a_real_limit_lowers_the_rate(clock):
    one, other = database(rate=10), database(rate=10)  # two worker processes
    one.slow_down(3)
    assert other.reserve() == approx(3.0)  # the provider's Retry-After, honoured by every sender
    a_real_limit(one)
    assert one.rate_in_force() == approx(LEARNED_FROM_10)  # 30 % below the rate that was throttled
    first, second = other.reserve(), other.reserve()
    assert first >= 3.0 and second - first == approx(1 / LEARNED_FROM_10)


@pytest.mark.django_db
def test_a_rare_429_while_we_keep_to_our_rate_is_jitter_and_keeps_us_near_it(clock):
    """A provider counting a strict one-second window at exactly our rate refuses, now and then,
    the one call timing jitter moved into the next second: we wait as asked and keep to 95 % of
    our rate (a little slack for the jitter), not 70 %."""
    limiter = database(rate=10)
    sent_at_our_rate(limiter, clock, 30)  # 300 calls
    limiter.slow_down(1)
    assert limiter.rate_in_force() == approx(10 * ratelimit.JITTER_MARGIN)
    assert limiter.reserve() == approx(1.0)  # its Retry-After still holds everyone
    sent_at_our_rate(limiter, clock, 60)
    limiter.slow_down(1)  # another one a minute later: still rare
    assert limiter.rate_in_force() == approx(10 * ratelimit.JITTER_MARGIN)
    clock.shift(ratelimit.FORGET_AFTER + 1)
    limiter.reserve()
    assert limiter.rate_in_force() == approx(10.0)  # quiet minutes: our own rate again


@pytest.mark.django_db
def test_429s_that_are_not_rare_teach_a_real_limit_within_a_second(clock):
    limiter = database(rate=10)
    sent_at_our_rate(limiter, clock, 30)
    limiter.slow_down(1)
    assert limiter.rate_in_force() == approx(10 * ratelimit.JITTER_MARGIN)  # one: jitter, perhaps
    calls = 0
    for _ in range(50):  # the provider's limit is 7 a second: 3 of every 10 calls refused
        clock.shift(0.1)
        limiter.reserve()
        calls += 1
        if calls % 3 == 0:
            limiter.slow_down(1)
        if limiter.rate_in_force() < 9:
            break
    assert limiter.rate_in_force() == approx(LEARNED_FROM_10)
    assert calls <= 15  # learned within a second and a half of 429s


@pytest.mark.django_db
def test_a_429_after_a_burst_of_ours_is_no_jitter(clock):
    """With a burst allowance we may have sent faster than our rate: a 429 teaches a real lesson."""
    limiter = database(rate=10, burst=50)
    sent_at_our_rate(limiter, clock, 30)
    for _ in range(40):
        limiter.reserve()  # 40 at once: the burst
    limiter.slow_down(1)
    assert limiter.rate_in_force() == approx(7.0)


@pytest.mark.django_db
def test_the_429s_of_one_burst_teach_one_lesson(clock):
    limiter = database(rate=10)
    a_real_limit(limiter)  # five calls of one burst come back 429 together
    assert limiter.rate_in_force() == approx(LEARNED_FROM_10)
    clock.shift(2)
    limiter.slow_down(1)  # a new episode
    assert limiter.rate_in_force() == approx(LEARNED_FROM_10 * 0.7)


@pytest.mark.django_db
def test_a_learned_rate_recovers_with_calm_back_to_ours(clock):
    limiter = database(rate=10)
    a_real_limit(limiter)
    rates = []
    for _ in range(6):
        clock.shift(ratelimit.RAISE_EVERY)
        limiter.reserve()
        rates.append(round(limiter.rate_in_force(), 2))
    # 6.65 -> +10 % + 0.5 each calm step, up to ours less the margin the first 429s left
    assert rates == [7.82, 9.1, 9.5, 9.5, 9.5, 9.5]


@pytest.mark.django_db
def test_with_no_rate_of_ours_a_429_learns_from_what_was_being_sent(clock):
    """No PORTAL_EMAIL_RATE_LIMIT: senders go as fast as they can until the provider says 429;
    then the whole account holds to 70 % of what it was sending."""
    one, other = database(rate=0), database(rate=0)
    for _ in range(40):
        assert one.reserve() == 0.0  # counted locally, added to the store a few times a second
    clock.shift(1.0)
    for _ in range(40):
        one.reserve()
    clock.shift(ratelimit.SYNC_EVERY)
    one.reserve()  # syncs: 80 in the last window
    other.slow_down(1)
    assert one.rate_in_force() == pytest.approx(0.7 * 40, rel=0.1)
    clock.shift(ratelimit.SYNC_EVERY)
    waited = 1.0 - ratelimit.SYNC_EVERY
    assert one.reserve() == approx(waited)  # the pause, then the learned rate's spacing
    assert one.reserve() == pytest.approx(waited + 1 / one.rate_in_force(), rel=0.01)


@pytest.mark.django_db
def test_a_learned_rate_is_forgotten_after_quiet_minutes(clock):
    limiter = database(rate=0)
    limiter.slow_down(1)
    assert limiter.rate_in_force() > 0
    clock.shift(ratelimit.FORGET_AFTER + 1)
    limiter.reserve()
    clock.shift(ratelimit.SYNC_EVERY)
    limiter.reserve()
    assert limiter.rate_in_force() == 0.0
    assert limiter.reserve() == 0.0


@pytest.mark.django_db
def test_wait_for_sleeps_until_the_slot(monkeypatch, clock):
    slept = []
    monkeypatch.setattr("core.sending.ratelimit.time.sleep", slept.append)
    limiter = database(rate=4)
    assert limiter.wait_for() and limiter.wait_for()
    assert limiter.wait_for(max_wait=0.1) is False
    assert slept == [approx(0.25)]


def test_the_rules_never_give_two_senders_one_slot():
    state = BucketState()
    starts = [state.reserve(100.0 + i * 0.001, cost=1, max_wait=60, configured=50, burst=1) for i in range(20)]
    assert all(b - a >= 0.02 - 1e-9 for a, b in zip(starts, starts[1:]))


def concurrent_slots(make_limiter, *, senders: int, each: int, after_each_sender=lambda: None) -> list[float]:
    """`senders` threads (as many worker processes would be) reserve `each` slots apiece."""
    starts, errors, lock = [], [], threading.Lock()

    def sender():
        try:
            limiter = make_limiter()
            for _ in range(each):
                slot = limiter.reserve_slot(max_wait=5)
                with lock:
                    starts.append(slot)
        except Exception as exc:  # noqa: BLE001 - handed to the test's thread
            errors.append(exc)
        finally:
            after_each_sender()

    threads = [threading.Thread(target=sender) for _ in range(senders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    return sorted(starts)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_on_postgresql_concurrent_senders_never_share_a_slot():
    """Eight threads, each with its own connection, reserve 80 slots at 200 a second: every slot
    is its own, 5 ms apart."""
    from django.db import connection

    starts = concurrent_slots(lambda: database(rate=200), senders=8, each=10, after_each_sender=lambda: connection.close())
    assert len(starts) == 80
    assert min(b - a for a, b in zip(starts, starts[1:])) >= 0.005 - 1e-6


# -- Redis: the same rules on Redis's clock -------------------------------------------------------


@pytest.mark.redis
def test_redis_spaces_slots_and_shares_them_between_processes(fresh_redis):
    one, other = in_redis(rate=20), in_redis(rate=20)
    slots = [one.reserve_slot(), other.reserve_slot(), one.reserve_slot(), other.reserve_slot()]
    gaps = [b - a for a, b in zip(slots, slots[1:])]
    assert gaps == pytest.approx([0.05, 0.05, 0.05], abs=0.005)


@pytest.mark.redis
def test_redis_refuses_a_slot_beyond_the_deadline_without_taking_it(fresh_redis):
    limiter = in_redis(rate=2)
    for _ in range(3):
        limiter.reserve()
    assert limiter.reserve(max_wait=1.2) is None
    assert limiter.reserve(max_wait=2) == pytest.approx(1.5, abs=0.05)


@pytest.mark.redis
def test_redis_a_429_in_one_process_holds_the_others(fresh_redis):
    one, other = in_redis(rate=0), in_redis(rate=0)
    one.slow_down(2)
    assert other.reserve() == pytest.approx(2.0, abs=0.05)
    # Nothing was being sent: the account learned the smallest lesson, 0.7 a second.
    assert in_redis(rate=10).reserve() == pytest.approx(2.0 + 1 / 0.7, abs=0.05)


@pytest.mark.redis
def test_redis_concurrent_senders_never_share_a_slot(fresh_redis):
    on_redis_clock, lock = [], threading.Lock()

    def recording_limiter():
        # The slots as Redis decided them, before each is moved onto this process's clock (a
        # move that varies with each answer's trip, so gaps read back locally are not exact).
        limiter = in_redis(rate=500)
        transact = limiter.store.transact

        def recorded(decide, **kwargs):
            result, offset = transact(decide, **kwargs)
            with lock:
                on_redis_clock.append(result[0])
            return result, offset

        limiter.store.transact = recorded
        return limiter

    starts = concurrent_slots(recording_limiter, senders=8, each=25)
    assert len(starts) == 200 and len(on_redis_clock) == 200
    slots = sorted(on_redis_clock)
    assert min(b - a for a, b in zip(slots, slots[1:])) >= 0.002 - 1e-6  # 500/s: 2 ms each, none shared
    assert starts[-1] - starts[0] >= 199 * 0.002 - 0.01


@pytest.mark.redis
def test_redis_keeps_the_state_no_longer_than_it_matters(fresh_redis):
    import redis

    in_redis(rate=10).reserve()
    ttl = redis.Redis.from_url(redis_url()).pttl("portal:send-rate:test-account")
    assert 0 < ttl <= (ratelimit.FORGET_AFTER + 1) * 1000
