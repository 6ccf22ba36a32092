"""What a text costs: the GSM-7 alphabet and how many segments (billed messages) a body is sent as.

A text is billed per segment. GSM-7: 160 characters alone, 153 each when split (an extension
character such as € counts 2); any character outside GSM-7 makes the whole text UCS-2: 70 / 67
UTF-16 units. Invitation texts are kept to one GSM-7 segment (`invitations.wording.invitation_text`).

* ``is_gsm7(body)``: every character is GSM-7;
* ``non_gsm7(body)``: the characters that make it UCS-2, each once, for an editor to name;
* ``measure(body) -> Measure``: encoding, units, segments, room left in the last segment;
* ``segments(body)``: the segment count alone.
"""

from __future__ import annotations

from dataclasses import dataclass

#: The GSM 03.38 default alphabet (one septet each; ESC itself excluded) ...
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
#: ... and its extension table (two septets each: an escape and the character).
GSM7_EXTENDED = frozenset("\f^{}\\[~]|€")
#: Units one segment holds: alone, and each of a split text (the rest is the split's header).
GSM7_SINGLE, GSM7_SPLIT = 160, 153
UCS2_SINGLE, UCS2_SPLIT = 70, 67


@dataclass(frozen=True)
class Measure:
    encoding: str  # "GSM-7" or "UCS-2"
    units: int  # septets (an extension character counts 2), or UTF-16 code units
    segments: int  # 0 for an empty text
    per_segment: int  # what each segment of this text holds (160/153, 70/67)

    @property
    def left_in_segment(self) -> int:
        """About how many units still fit in the last segment without another one."""
        if self.segments <= 1:
            return (GSM7_SINGLE if self.encoding == "GSM-7" else UCS2_SINGLE) - self.units
        return self.segments * self.per_segment - self.units


def is_gsm7(body: str) -> bool:
    """Whether every character is in the GSM-7 alphabet (else the text goes as UCS-2)."""
    return all(ch in GSM7_BASIC or ch in GSM7_EXTENDED for ch in body)


def non_gsm7(body: str) -> list[str]:
    """The characters that make a text UCS-2 (curly quotes, emoji, ...), each once, in order:
    for an editor to tell staff what to replace."""
    return list(dict.fromkeys(ch for ch in body if ch not in GSM7_BASIC and ch not in GSM7_EXTENDED))


def measure(body: str) -> Measure:
    if is_gsm7(body):
        sizes = [2 if ch in GSM7_EXTENDED else 1 for ch in body]  # an escape pair is never split
        encoding, single, split = "GSM-7", GSM7_SINGLE, GSM7_SPLIT
    else:
        sizes = [2 if ord(ch) > 0xFFFF else 1 for ch in body]  # a surrogate pair is never split
        encoding, single, split = "UCS-2", UCS2_SINGLE, UCS2_SPLIT
    units = sum(sizes)
    if units <= single:
        return Measure(encoding, units, 1 if units else 0, single)
    count, used = 1, 0
    for size in sizes:
        if used + size > split:
            count, used = count + 1, 0
        used += size
    return Measure(encoding, units, count, split)


def segments(body: str) -> int:
    """How many segments (billed messages) the text is sent as; 0 for an empty text."""
    return measure(body).segments
