"""Admin pagination that does not count a million rows on every page view."""

from django.core.paginator import Paginator
from django.utils.functional import cached_property

#: Lists count at most this many rows; past it the page says "more than 10,000".
COUNT_CAP = 10_000


class CappedCountPaginator(Paginator):
    """Counts at most COUNT_CAP + 1 rows (`SELECT count(*) FROM (... LIMIT 10001)`), which stops
    early instead of joining every patient to their latest invitation. Pages past the cap are
    not offered: a practice finds a patient by search or filters, not by paging to page 201.
    `capped` tells the template to say "more than 10,000"."""

    capped = False

    @cached_property
    def count(self) -> int:
        counted = self.object_list.order_by()[: COUNT_CAP + 1].count()
        self.capped = counted > COUNT_CAP
        return min(counted, COUNT_CAP)
