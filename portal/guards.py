"""What patient pages wrap themselves in: pages whose URL carries a token never leak it in a Referer
header nor get cached (`no_referrer`), and the portal's own pages need a signed-in patient
(`patient_required`)."""

import functools

from django.http import Http404
from django.middleware.csrf import CsrfViewMiddleware
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.decorators import decorator_from_middleware
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt

from portal import records


class _NullOriginCsrfMiddleware(CsrfViewMiddleware):
    """CSRF protection for pages served with `Referrer-Policy: no-referrer`.

    Under that policy browsers submit the page's forms with `Origin: null`, which Django's
    origin check rejects. The CSRF token (cookie and form field must match) is still required.
    """

    def _origin_verified(self, request):
        return request.META.get("HTTP_ORIGIN") == "null" or super()._origin_verified(request)


_csrf_protect_allowing_null_origin = decorator_from_middleware(_NullOriginCsrfMiddleware)


def no_referrer(view):
    """The token is in the URL: never leak it in a Referer header, never cache the page."""
    protected = _csrf_protect_allowing_null_origin(view)

    @functools.wraps(view)
    def wrapper(request, *args, **kwargs):
        response = protected(request, *args, **kwargs)
        response["Referrer-Policy"] = "no-referrer"
        return response

    # The global middleware would refuse `Origin: null`; the decorator above checks instead.
    return csrf_exempt(never_cache(wrapper))


def patient_required(view=None, *, section: str = ""):
    """A portal page: a signed-in login and the record it opens (its own, or a patient it acts for:
    `portal.records`), passed to the view as the patient; `request.record` says in which role. With
    `section`, only a record whose level shows that section may open the page (404 otherwise)."""
    if view is None:
        return functools.partial(patient_required, section=section)

    @functools.wraps(view)
    def wrapper(request, *args, **kwargs):
        if not request.user.is_authenticated:
            return redirect(f"{reverse('portal:login')}?next={request.path}")
        record = records.open_record(request)
        if record is None:
            return render(request, "portal/not_a_patient.html", status=403)
        if section and not records.shows(record, section):
            raise Http404("Not part of this access.")
        request.record = record
        return view(request, record.patient, *args, **kwargs)

    return never_cache(wrapper)
