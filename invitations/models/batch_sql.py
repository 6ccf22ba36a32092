"""Two statements the ORM makes slow for hundreds of rows at a time, written once, for PostgreSQL
and SQLite alike; and `AnyOf`, the condition "one of these ids" for a few hundred ids.

A bulk-run chunk inserts a few hundred invitations and events and then marks them sent with
their provider message ids. `bulk_create` builds a model instance and prepares every field of
every row (about as long as the database takes to store them), and an `update` with a message id
per row needs a `CASE` of hundreds of `WHEN`s that Django takes longer to compile than the
database to run. Here a row is a tuple: on PostgreSQL each column goes as one array (unnest),
elsewhere as a VALUES list with only the columns that need it (UUIDs, datetimes) converted.
"""

from typing import Any, Iterable, Sequence

from django.core.exceptions import EmptyResultSet
from django.db import connection, models
from django.db.models import F, Lookup


def _column(model: type[models.Model], name: str) -> tuple[str, Any]:
    field = model._meta.get_field(name)
    if field.get_internal_type() in ("UUIDField", "DateTimeField", "DateField"):
        return field.column, lambda value: field.get_db_prep_save(value, connection)
    return field.column, None


def _prepare(model, names: Sequence[str]) -> tuple[list[str], list[Any]]:
    if not names:
        return [], []
    columns, converters = zip(*(_column(model, name) for name in names))
    return [connection.ops.quote_name(column) for column in columns], list(converters)


def _flatten(rows: Iterable[Sequence], converters: list[Any]) -> list[Any]:
    params: list[Any] = []
    for row in rows:
        params.extend(value if convert is None or value is None else convert(value) for value, convert in zip(row, converters))
    return params


def _rows_source(model, fields: Sequence[str], rows: list[Sequence]) -> tuple[str, list[Any]]:
    """A FROM item giving `rows` as columns column1, column2, ...: on PostgreSQL one array per
    column through unnest() (a fixed, short statement whatever the number of rows), elsewhere
    a VALUES list."""
    if connection.vendor == "postgresql":
        types = [model._meta.get_field(name).db_type(connection) for name in fields]
        arrays = ", ".join(f"%s::{db_type}[]" for db_type in types)
        aliases = ", ".join(f"column{index}" for index in range(1, len(fields) + 1))
        return f"unnest({arrays}) AS new_values({aliases})", [list(column) for column in zip(*rows)]
    _, converters = _prepare(model, fields)
    one = "(" + ", ".join(["%s"] * len(fields)) + ")"
    return f"(VALUES {', '.join([one] * len(rows))}) AS new_values", _flatten(rows, converters)


def _cursor():
    """A cursor for the row arrays: on PostgreSQL one that binds its parameters on the server, so each
    column's array goes to the database as a parameter instead of being quoted into the statement's
    text in Python (Django's cursors bind on the client: for a chunk's 500 rows of 25 columns that
    quoting cost more than the database's work). Still Django's cursor wrapper around it, so the
    statement is logged and counted like every other."""
    if connection.vendor != "postgresql":
        return connection.cursor()
    from django.db.backends.postgresql.base import ServerBindingCursor  # only where psycopg is installed

    connection.ensure_connection()
    connection.validate_thread_sharing()
    cursor = ServerBindingCursor(connection.connection)
    return connection.make_debug_cursor(cursor) if connection.queries_logged else connection.make_cursor(cursor)


def insert_rows(model: type[models.Model], fields: Sequence[str], rows: list[Sequence], *, returning: Sequence[str] = ()) -> list[tuple]:
    """INSERT `rows` (tuples in the order of `fields`) with one statement; returns the
    `returning` fields of each new row, in no particular order."""
    if not rows:
        return []
    columns, _ = _prepare(model, fields)
    source, params = _rows_source(model, fields, rows)
    selected = ", ".join(f"new_values.column{index}" for index in range(1, len(fields) + 1))
    statement = (
        f"INSERT INTO {connection.ops.quote_name(model._meta.db_table)} ({', '.join(columns)}) "
        f"SELECT {selected} FROM {source}"
    )
    if returning:
        returned, _ = _prepare(model, returning)
        statement += f" RETURNING {', '.join(returned)}"
    with _cursor() as cursor:
        cursor.execute(statement, params)
        return cursor.fetchall() if returning else []


def update_from_values(
    model: type[models.Model], rows: list[Sequence], *, columns: Sequence[str], set_fields: dict[str, Any],
    where: dict[str, Any], still: "models.Q | None" = None,
) -> list[int]:
    """UPDATE the rows whose primary key is the first item of each tuple in `rows`: `columns`
    from the tuple's other items, `set_fields` to the same value for all; only rows that also
    match `where` (field = value) and `still` (any condition on the row's own columns) change.
    One statement. Returns the primary keys changed."""
    if not rows:
        return []
    table = connection.ops.quote_name(model._meta.db_table)
    pk, _ = _prepare(model, [model._meta.pk.name])
    own, _ = _prepare(model, columns)
    constants, constant_converters = _prepare(model, list(set_fields))
    conditions, condition_converters = _prepare(model, list(where))
    source, source_params = _rows_source(model, [model._meta.pk.name, *columns], rows)
    assignments = [f"{column} = new_values.column{index}" for index, column in enumerate(own, start=2)]
    assignments += [f"{column} = %s" for column in constants]
    statement = (
        f"UPDATE {table} SET {', '.join(assignments)} FROM {source} "
        f"WHERE {table}.{pk[0]} = new_values.column1"
        + "".join(f" AND {table}.{column} = %s" for column in conditions)
        + f" RETURNING {table}.{pk[0]}"
    )
    params = _flatten([list(set_fields.values())], constant_converters)
    params += source_params
    params += _flatten([list(where.values())], condition_converters)
    if still is not None:
        guard = model._base_manager.filter(still).values("pk")
        guard_where, guard_params = guard.query.get_compiler(connection=connection).compile(guard.query.where)
        statement = statement.replace(" RETURNING ", f" AND {guard_where} RETURNING ", 1)
        params += list(guard_params)
    with _cursor() as cursor:
        cursor.execute(statement, params)
        return [row[0] for row in cursor.fetchall()]


def update_returning(model: type[models.Model], batch: "models.QuerySet", *, set_fields: dict[str, Any], still: "models.Q") -> list[int]:
    """UPDATE the rows `batch` (a queryset of primary keys, e.g. sliced) selects, setting
    `set_fields`, but only those that still match `still` when the UPDATE reaches them (on
    PostgreSQL a row another transaction changed meanwhile is checked again, so two sweeps
    never both change it). One statement; returns the primary keys changed."""
    table = connection.ops.quote_name(model._meta.db_table)
    pk, _ = _prepare(model, [model._meta.pk.name])
    constants, converters = _prepare(model, list(set_fields))
    chosen_sql, chosen_params = batch.query.sql_with_params()
    guard = model._base_manager.filter(still).values("pk")
    guard_where, guard_params = guard.query.get_compiler(connection=connection).compile(guard.query.where)
    statement = (
        f"UPDATE {table} SET {', '.join(f'{column} = %s' for column in constants)} "
        f"WHERE {table}.{pk[0]} IN ({chosen_sql}) AND {guard_where} RETURNING {table}.{pk[0]}"
    )
    params = _flatten([list(set_fields.values())], converters) + list(chosen_params) + list(guard_params)
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        return [row[0] for row in cursor.fetchall()]


class AnyOf(Lookup):
    """``AnyOf("patient_id", ids)``, a condition for ``filter()``: the field is one of `ids`. What
    ``patient_id__in=ids`` means, but on PostgreSQL the ids go as one array (``= ANY(%s)``), so the
    statement stays short and the same whatever their number: Django builds and the driver parses
    one placeholder instead of hundreds (a chunk's queries name its 500 patients, several times).
    Elsewhere an ``IN`` list."""

    lookup_name = "any_of"
    prepare_rhs = False

    def __init__(self, field: "str | Any", ids: Iterable):
        super().__init__(F(field) if isinstance(field, str) else field, list(ids))

    def as_sql(self, compiler, connection):
        if not self.rhs:
            raise EmptyResultSet
        lhs, params = self.process_lhs(compiler, connection)
        field = self.lhs.output_field
        values = [field.get_db_prep_value(value, connection, prepared=False) for value in self.rhs]
        if connection.vendor == "postgresql":
            return f"{lhs} = ANY(%s::{field.db_type(connection)}[])", [*params, values]
        return f"{lhs} IN ({', '.join(['%s'] * len(values))})", [*params, *values]
