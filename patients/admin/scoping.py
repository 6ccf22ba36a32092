"""Tenant scoping for every ModelAdmin in the project.

`PracticeScopedAdmin` is the one place that keeps staff inside their practices: the change list,
the change/delete/history views (another practice's id is a 404), foreign-key and practice
choices, autocomplete (which goes through the target admin's scoped queryset), list filters,
actions (they receive the scoped change-list queryset) and the per-practice role checks. Hostile
list parameters and action ids are a 400, never a 500 (`core.hostile_input.HostileValueGuard`).
Custom admin views call `scoped_practices()` / `get_object_or_404_scoped()` from it too.
"""

from typing import Any, Optional

from django import forms
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.db.models import Model, QuerySet
from django.http import Http404, HttpRequest

from core.hostile_input import HostileValueGuard

from patients import tenancy
from patients.models import Practice


class PracticeScopedForm(forms.ModelForm):
    def _get_validation_exclusions(self):
        # The practice is often read-only or hidden in the admin; unique constraints that
        # include it (chart number per practice, opt-out address per practice) must still be
        # checked, or a duplicate would reach the database as an IntegrityError.
        exclude = super()._get_validation_exclusions()
        exclude.discard("practice")
        return exclude


class PracticeFilter(admin.RelatedFieldListFilter):
    """The practice filter offers only the user's own practices."""

    def field_choices(self, field, request, model_admin):
        return [(p.pk, str(p)) for p in model_admin.scoped_practices(request)]


def practice_id_of(obj: Model, lookup: str) -> Optional[int]:
    """Follow a lookup such as "practice" or "invitation__practice" to a practice id."""
    *path, last = lookup.split("__")
    for name in path:
        obj = getattr(obj, name)
        if obj is None:
            return None
    if last in ("pk", "id"):
        return obj.pk
    return getattr(obj, f"{last}_id")


class PracticeScopedAdmin(HostileValueGuard, admin.ModelAdmin):
    #: Lookup from the model to its practice ("pk" for Practice itself).
    practice_lookup = "practice"
    form = PracticeScopedForm

    # -- which practices -----------------------------------------------------------------

    def _perm(self, action: str) -> str:
        opts = self.model._meta
        return f"{opts.app_label}.{action}_{opts.model_name}"

    def scoped_practice_ids(self, request: HttpRequest, action: str = "view") -> Optional[set[int]]:
        return tenancy.practice_ids_for(request.user, self._perm(action))

    def scoped_practices(self, request: HttpRequest, action: str = "view") -> QuerySet:
        return tenancy.practices_for(request.user, self._perm(action))

    def is_single_practice(self, request: HttpRequest) -> bool:
        ids = self.scoped_practice_ids(request)
        return ids is not None and len(ids) == 1

    # -- rows ----------------------------------------------------------------------------

    def scope_queryset(self, request: HttpRequest, queryset: QuerySet, action: str = "view") -> QuerySet:
        ids = self.scoped_practice_ids(request, action)
        if ids is None:
            return queryset
        return queryset.filter(**{f"{self.practice_lookup}__in": ids})

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return self.scope_queryset(request, super().get_queryset(request))

    def get_object(self, request: HttpRequest, object_id: str, from_field=None):
        obj = super().get_object(request, object_id, from_field)
        if obj is None:
            # Another practice's row and a row that does not exist look the same.
            raise Http404("No such record in your practices.")
        return obj

    def get_object_or_404_scoped(self, request: HttpRequest, object_id: Any):
        return self.get_object(request, str(object_id))

    def practice_id_of(self, obj: Model) -> Optional[int]:
        return practice_id_of(obj, self.practice_lookup)

    # -- permissions: model permission (groups) and the role at the row's practice ----------

    def _allowed_on(self, request: HttpRequest, action: str, obj: Optional[Model]) -> bool:
        if obj is None or obj.pk is None:
            ids = self.scoped_practice_ids(request, action)
            return ids is None or bool(ids)
        return tenancy.can(request.user, self._perm(action), self.practice_id_of(obj))

    def has_view_permission(self, request, obj=None):
        return super().has_view_permission(request, obj) and (
            self._allowed_on(request, "view", obj) or self._allowed_on(request, "change", obj)
        )

    def has_change_permission(self, request, obj=None):
        return super().has_change_permission(request, obj) and self._allowed_on(request, "change", obj)

    def has_delete_permission(self, request, obj=None):
        return super().has_delete_permission(request, obj) and self._allowed_on(request, "delete", obj)

    def has_add_permission(self, request, *args):
        return super().has_add_permission(request, *args) and self._allowed_on(request, "add", None)

    # -- choices -------------------------------------------------------------------------

    def _choice_practice_ids(self, request: HttpRequest) -> Optional[set[int]]:
        ids = tenancy.practice_ids_for(request.user, self._perm("add"))
        if ids is None:
            return None
        return ids | (tenancy.practice_ids_for(request.user, self._perm("change")) or set())

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        related = db_field.related_model
        ids = self._choice_practice_ids(request)
        if related is Practice:
            queryset = Practice.objects.all() if ids is None else Practice.objects.filter(pk__in=ids)
            kwargs["queryset"] = queryset
            if ids is not None and len(ids) == 1:
                # A single-practice user never picks the practice.
                kwargs["initial"] = next(iter(ids))
                kwargs["widget"] = forms.HiddenInput
        elif ids is not None and related is get_user_model():
            kwargs["queryset"] = related.objects.filter(memberships__practice_id__in=ids).distinct()
        elif ids is not None and any(f.name == "practice" for f in related._meta.fields):
            kwargs["queryset"] = related._default_manager.filter(practice_id__in=ids)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        related = db_field.related_model
        ids = self._choice_practice_ids(request)
        if ids is not None and any(f.name == "practice" for f in related._meta.fields):
            kwargs["queryset"] = related._default_manager.filter(practice_id__in=ids)
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        if obj is not None and self.practice_lookup == "practice" and "practice" not in fields:
            # Rows never move between practices.
            fields.append("practice")
        return fields

    # -- filters -------------------------------------------------------------------------

    def get_list_filter(self, request):
        filters = []
        for entry in super().get_list_filter(request):
            if entry == self.practice_lookup and self.practice_lookup != "pk":
                if not self.is_single_practice(request):
                    filters.append((entry, PracticeFilter))
                continue
            filters.append(entry)
        return filters

    def get_list_display(self, request):
        columns = list(super().get_list_display(request))
        if self.is_single_practice(request) and "practice" in columns and len(columns) > 1:
            columns.remove("practice")
        return columns


class ReadOnlyAdmin:
    """A record nobody adds, changes or deletes from the admin: it is written by the work it records
    (the audit trail, delivery reports, grants of access, job runs). Mixed in before the admin class."""

    def has_add_permission(self, request, *args):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class TimelineInline(admin.TabularInline):
    """A record's timeline on its page, oldest first (an invitation's events, an application's lender
    events): read-only, with who did each step in the same query."""

    extra = 0
    can_delete = False
    ordering = ["at", "id"]
    verbose_name = "timeline entry"
    verbose_name_plural = "timeline"

    def get_readonly_fields(self, request, obj=None):
        return self.fields

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("actor")
