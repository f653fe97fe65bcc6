"""SQL aggregates over groups of rows that read the same on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Float
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement


class minutes_between(FunctionElement[float]):  # noqa: N801 (a SQL function, named as one)
    """The minutes from the first timestamp to the second (fractional)."""

    type = Float()
    inherit_cache = True
    name = "minutes_between"


@compiles(minutes_between, "postgresql")
def _minutes_postgresql(element: minutes_between, compiler: SQLCompiler, **kw: Any) -> str:
    start, end = (compiler.process(c, **kw) for c in element.clauses)
    # date_part, not EXTRACT: a double, where EXTRACT computes in numeric (slower).
    return f"(date_part('epoch', {end} - {start}) / 60.0)"


@compiles(minutes_between, "sqlite")
def _minutes_sqlite(element: minutes_between, compiler: SQLCompiler, **kw: Any) -> str:
    # SQLite keeps timestamps as ISO text, which julianday() reads.
    start, end = (compiler.process(c, **kw) for c in element.clauses)
    return f"((julianday({end}) - julianday({start})) * 1440.0)"


class median(FunctionElement[float]):  # noqa: N801 (a SQL function, named as one)
    """Aggregate: the median of the values that are not NULL (the mean of the two middle ones
    when their number is even, as statistics.median), NULL when there are none."""

    type = Float()
    inherit_cache = True
    name = "median"


@compiles(median, "postgresql")
def _median_postgresql(element: median, compiler: SQLCompiler, **kw: Any) -> str:
    return f"percentile_cont(0.5) WITHIN GROUP (ORDER BY {compiler.process(element.clauses, **kw)})"


@compiles(median, "sqlite")
def _median_sqlite(element: median, compiler: SQLCompiler, **kw: Any) -> str:
    # An aggregate each connection registers (koan.db.sqlite.Median).
    return f"median({compiler.process(element.clauses, **kw)})"


class json_rows(FunctionElement[Any]):  # noqa: N801 (a SQL function, named as one)
    """Aggregate: a JSON array holding one array per row of the given columns."""

    type = JSON()
    inherit_cache = True
    name = "json_rows"


@compiles(json_rows, "postgresql")
def _json_rows_postgresql(element: json_rows, compiler: SQLCompiler, **kw: Any) -> str:
    return f"json_agg(json_build_array({compiler.process(element.clauses, **kw)}))"


@compiles(json_rows, "sqlite")
def _json_rows_sqlite(element: json_rows, compiler: SQLCompiler, **kw: Any) -> str:
    return f"json_group_array(json_array({compiler.process(element.clauses, **kw)}))"
