"""The moment the tests' clock stands at: the `frozen` fixture (tests/conftest.py) stops time here,
and the invitations and notifications tests count their boundaries from it. A test that needs
another moment names it in its own module and travels there explicitly."""

import datetime

UTC = datetime.timezone.utc

#: Monday 2 March 2026, 15:00 UTC: 10:00 in New York, 7:00 in Los Angeles.
NOW = datetime.datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
