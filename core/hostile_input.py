"""Hostile values in a request are a 400 that says why, never a 500.

A probe found three kinds in the admin: a NUL in a list filter (``?status=%00``: PostgreSQL refuses
NUL in text, the driver raises), a year of eleven digits (``?created_at__year=99999999999``: Python's
dates overflow) and action ids that are not ids (``_selected_action=abc``). Two guards:

- `RejectNulCharacters`, a middleware: a NUL in any query-string parameter or urlencoded form field
  is refused for the whole site (no page has a use for one).
- `HostileValueGuard`, a ModelAdmin mixin (every admin of the project has it: the tenant mixin
  `PracticeScopedAdmin` and the auth admins): a change list whose filters cannot be applied, and an
  action posted with ids that are not the model's ids, are answered with a 400 page that links back
  to the whole list. Django's own answer to a filter it cannot apply (a redirect to ``?e=1``, then a
  "Database error" page) is folded into the same 400.
"""

from __future__ import annotations

import logging

from django.contrib.admin import helpers
from django.contrib.admin.options import IncorrectLookupParameters
from django.core.exceptions import ValidationError
from django.db import connection
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, QueryDict
from django.template.response import TemplateResponse

logger = logging.getLogger(__name__)

NUL = "\x00"
NUL_REFUSED = "A NUL character is not allowed in a URL parameter or a form field."
SELECTION_REFUSED = "The selected rows must be row ids of this list; nothing was changed."


def _has_nul(values: QueryDict) -> bool:
    return any(NUL in key or any(NUL in value for value in items) for key, items in values.lists())


class RejectNulCharacters:
    """Refuses (400) a request with a NUL in its query string or its urlencoded form. Multipart
    bodies (uploads) are left to the forms: Django's form fields refuse NUL themselves, and reading
    them here would spend the upload before the view could choose its handlers."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if _has_nul(request.GET) or (
            request.method == "POST" and request.content_type == "application/x-www-form-urlencoded" and _has_nul(request.POST)
        ):
            return HttpResponseBadRequest(NUL_REFUSED, content_type="text/plain; charset=utf-8")
        return self.get_response(request)


class BadListRequest(Exception):
    """A change list's parameters cannot be applied."""


class HostileValueGuard:
    """ModelAdmin mixin: list filters and action ids that cannot be applied are a 400, never a 500."""

    def get_changelist_instance(self, request: HttpRequest):
        try:
            # The change list counts its rows as it is made, so a filter the database or Python's
            # dates cannot take fails here, not while the page renders.
            return super().get_changelist_instance(request)
        except IncorrectLookupParameters as exc:
            raise BadListRequest("This list cannot be filtered that way.") from exc
        except (ValueError, OverflowError, ValidationError) as exc:
            logger.warning("Refused list parameters for %s (%s)", self.model._meta.label, type(exc).__name__)
            raise BadListRequest("A filter of this list has a value it cannot use.") from exc

    def changelist_view(self, request: HttpRequest, extra_context=None):
        if request.method == "POST" and "action" in request.POST and not self._selection_is_ids(request):
            return self._bad_list_page(request, SELECTION_REFUSED)
        try:
            return super().changelist_view(request, extra_context)
        except BadListRequest as exc:
            return self._bad_list_page(request, str(exc))

    def _selection_is_ids(self, request: HttpRequest) -> bool:
        pk = self.model._meta.pk
        low, high = connection.ops.integer_field_range(pk.get_internal_type())
        for value in request.POST.getlist(helpers.ACTION_CHECKBOX_NAME):
            try:
                python_value = pk.to_python(value)
            except (ValidationError, ValueError, TypeError):
                return False
            if isinstance(python_value, int) and not ((low is None or python_value >= low) and (high is None or python_value <= high)):
                return False
        return True

    def _bad_list_page(self, request: HttpRequest, reason: str) -> TemplateResponse:
        opts = self.model._meta
        context = {
            **self.admin_site.each_context(request),
            "title": f"{opts.verbose_name_plural.capitalize()}: this list cannot be shown",
            "reason": reason,
            "opts": opts,
            "list_url": request.path,
        }
        return TemplateResponse(request, "admin/bad_list_request.html", context, status=400)
