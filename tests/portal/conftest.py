from tests.e2e.conftest import browser, page  # noqa: F401  (Chromium fixtures for the browser tests)
from tests.invitations.conftest import _anymail_test_backend_and_clean_state  # noqa: F401
