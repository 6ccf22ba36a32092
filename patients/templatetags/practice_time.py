"""Template filters for the one clock of staff pages (patients.timezones)."""

from django import template

from patients.timezones import local_time, zone_in_words

register = template.Library()


@register.filter
def zone_words(name: str) -> str:
    """{{ zone|zone_words }}: "Eastern Time" for America/New_York."""
    return zone_in_words(name)


@register.filter
def practice_time(moment, zone: str = "") -> str:
    """{{ moment|practice_time:practice.time_zone }}: the time in the practice's zone in the one
    format, its zone named; without a zone, in the page's zone (named in the header)."""
    return local_time(moment, zone or None, with_zone=bool(zone))
