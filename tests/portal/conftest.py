from tests.invitations.conftest import _anymail_test_backend_and_clean_state  # noqa: F401
