"""What a text costs (`core.sending.text_segments`): GSM-7 and UCS-2 segments, escape pairs that never
straddle two segments, the characters that make a text UCS-2, and an invitation's text in one
GSM-7 segment, counted the same by the Twilio stand-in."""

import pytest

from core.sending import text_segments
from tests import twilio_standin
from tests.core.channels import BODY


@pytest.mark.parametrize(
    "body, gsm7, count",
    [
        ("", True, 0), ("a" * 160, True, 1), ("a" * 161, True, 2), ("a" * 306, True, 2), ("a" * 307, True, 3),
        ("€" * 80, True, 1), ("€" * 81, True, 2),  # an extension character is two of the 160
        ("ж" * 70, False, 1), ("ж" * 71, False, 2), ("ж" * 134, False, 2), ("ж" * 135, False, 3),
        ("Don’t forget", False, 1), ("a" * 69 + "😀", False, 2),  # an emoji is two UCS-2 units
    ],
)
def test_gsm7_and_ucs2_segments(body, gsm7, count):
    assert text_segments.is_gsm7(body) is gsm7
    assert text_segments.segments(body) == count


def test_an_escape_pair_never_straddles_two_segments():
    body = "a" * 152 + "€" + "a" * 10  # the € would take units 153 and 154
    assert text_segments.measure(body).units == 164 and text_segments.segments(body) == 2
    assert text_segments.segments("a" * 152 + "€" + "a" * 153) == 3


def test_the_characters_that_make_a_text_ucs2_are_named_once_each():
    assert text_segments.non_gsm7("Don’t miss it — “today”’s the day") == ["’", "—", "“", "”"]
    assert text_segments.non_gsm7(BODY) == []


def test_an_invitation_text_with_its_link_fits_one_gsm7_segment():
    measured = text_segments.measure(BODY)
    assert (measured.encoding, measured.segments) == ("GSM-7", 1)
    assert measured.left_in_segment == 160 - len(BODY)
    assert twilio_standin.segments(BODY) == 1  # the stand-in (Twilio) counts it the same
