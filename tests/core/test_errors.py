"""What each provider's refusal means, learned from anymail's real backends talking to the local
stand-in of the provider's API (tests/provider_standin/), not from hand-made exceptions."""

import time
import warnings

import pytest
from django.core.mail import EmailMultiAlternatives, get_connection

from core.sending.errors import ErrorKind, classify, describe

PROVIDERS = ["postmark", "mailgun", "sendgrid", "amazon_ses"]


def attempt(to: str = "pat@example.com"):
    """Send one message through the configured backend; the exception it raised, or None."""
    message = EmailMultiAlternatives("Your portal invitation", "Hello", "Maple Dental <portal@mg.portal.example>", [to])
    message.attach_alternative("<p>Hello</p>", "text/html")
    message.metadata = {"invitation": "8d1c"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # anymail warns that SendGrid is no longer officially supported
        try:
            get_connection().send_messages([message])
        except Exception as exc:  # noqa: BLE001 - the test reads it
            return exc
    return None


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_message_the_provider_accepts_raises_nothing(use_provider, provider):
    standin = use_provider(provider)
    assert attempt() is None
    assert standin.stats()["messages"] == 1


@pytest.mark.parametrize("provider", PROVIDERS)
def test_an_invalid_address_is_refused_for_good(use_provider, provider):
    use_provider(provider)
    error = classify(attempt("invalid-address@example.com"))
    assert error.kind is ErrorKind.REFUSED, error


@pytest.mark.parametrize("provider", ["postmark", "amazon_ses"])
def test_an_address_that_bounced_before_is_refused_for_good(use_provider, provider):
    use_provider(provider)  # Postmark's "inactive recipient" (406), SES's MessageRejected
    assert classify(attempt("inactive-reader@example.com")).kind is ErrorKind.REFUSED


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_429_is_throttling_with_the_providers_retry_after(use_provider, provider):
    standin = use_provider(provider)
    standin.configure(rate_limit=1, burst=1)
    assert attempt() is None
    error = classify(attempt())
    assert error.kind is ErrorKind.THROTTLED, error
    assert error.retry_after == 1.0
    assert standin.stats()["throttled"] == 1


def test_a_429_without_retry_after_is_still_throttling(use_provider):
    standin = use_provider("mailgun")
    standin.configure(rate_limit=1, burst=1, retry_after=False)
    attempt()
    error = classify(attempt())
    assert (error.kind, error.retry_after) == (ErrorKind.THROTTLED, None)


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("status", [500, 503])
def test_a_server_error_is_temporary(use_provider, provider, status):
    standin = use_provider(provider)
    standin.configure(fail_next=1, fail_status=status)
    assert classify(attempt()).kind is ErrorKind.TEMPORARY
    assert attempt() is None  # the next call goes through


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_refused_key_is_a_service_problem_not_the_patients(use_provider, provider):
    standin = use_provider(provider)
    standin.configure(auth_fail=True)
    error = classify(attempt())
    assert error.kind is ErrorKind.SERVICE, error


def test_an_unreachable_provider_is_temporary(use_provider, settings):
    use_provider("postmark")
    settings.ANYMAIL = {**settings.ANYMAIL, "POSTMARK_API_URL": "http://127.0.0.1:9/"}  # nothing listens
    assert classify(attempt()).kind is ErrorKind.TEMPORARY


def test_amazon_ses_errors_are_told_apart_by_their_codes_not_an_http_status(use_provider):
    """anymail raises SES errors without a status_code (the old rule called every one temporary)."""
    use_provider("amazon_ses")
    exc = attempt("inactive-reader@example.com")
    assert getattr(exc, "status_code", None) is None
    assert describe(exc).startswith("AnymailAPIError [MessageRejected]")


@pytest.mark.parametrize(
    "code,message,kind",
    [
        ("Throttling", "Maximum sending rate exceeded.", ErrorKind.THROTTLED),
        ("Throttling", "Daily message quota exceeded.", ErrorKind.SERVICE),
        ("MessageRejected", "Email address is not verified.", ErrorKind.REFUSED),
        ("AccountSendingPausedException", "Sending is paused for this account.", ErrorKind.SERVICE),
        ("MailFromDomainNotVerifiedException", "MAIL FROM domain not verified", ErrorKind.SERVICE),
        ("InternalFailure", "Internal failure", ErrorKind.TEMPORARY),
    ],
)
def test_amazon_ses_v1_and_v2_error_codes(code, message, kind):
    from anymail.exceptions import AnymailAPIError
    from botocore.exceptions import ClientError

    status = 500 if code == "InternalFailure" else 400
    response = {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}}
    try:
        try:
            raise ClientError(response, "SendEmail")
        except ClientError as err:
            raise AnymailAPIError(str(err), response=err.response) from err
    except AnymailAPIError as exc:
        assert classify(exc).kind is kind


def test_the_description_keeps_the_first_line_not_the_providers_response(use_provider):
    standin = use_provider("postmark")
    standin.configure(auth_fail=True)
    detail = describe(attempt())
    assert detail.startswith("AnymailRequestsAPIError (HTTP 401) [10]")
    assert "\n" not in detail and len(detail) <= 300


def test_a_bad_practice_reply_to_address_is_a_service_problem_not_the_patients(use_provider):
    use_provider("postmark")
    message = EmailMultiAlternatives("Hi", "Hello", "Maple Dental <portal@mg.portal.example>", ["pat@example.com"], reply_to=["front desk@@maple"])
    try:
        get_connection().send_messages([message])
    except Exception as exc:  # noqa: BLE001
        assert classify(exc).kind is ErrorKind.SERVICE
    else:
        raise AssertionError("anymail accepted an invalid Reply-To")


def test_ses_refusing_our_unverified_sender_is_a_service_problem():
    from anymail.exceptions import AnymailAPIError
    from botocore.exceptions import ClientError

    message = EmailMultiAlternatives("Hi", "Hello", "Maple Dental <portal@maple.example>", ["pat@example.com"])
    response = {
        "Error": {"Code": "MessageRejected", "Message": "Email address is not verified. The following identities failed the check in region US-EAST-1: portal@maple.example"},
        "ResponseMetadata": {"HTTPStatusCode": 400},
    }
    try:
        try:
            raise ClientError(response, "SendEmail")
        except ClientError as err:
            raise AnymailAPIError(str(err), response=err.response, email_message=message) from err
    except AnymailAPIError as exc:
        assert classify(exc).kind is ErrorKind.SERVICE


def test_a_far_future_rate_limit_reset_is_believed_for_an_hour_at_most():
    from anymail.exceptions import AnymailRequestsAPIError

    class Response:
        status_code = 429
        headers = {"X-RateLimit-Reset": str(time.time() + 10 ** 9)}

        def json(self):
            return {"errors": [{"message": "too many requests"}]}

    error = classify(AnymailRequestsAPIError("slow down", response=Response()))
    assert error.kind is ErrorKind.THROTTLED and error.retry_after == 3600
