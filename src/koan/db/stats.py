"""SQL for figures over groups of rows that reads the same on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Float, Subquery, func, or_, select
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


def median_by(rows: Subquery, key: str, value: str) -> Subquery:
    """(key, median) for each `key` of `rows`: the middle `value`, or the mean of the two
    middle ones (as statistics.median), ranked by window functions, which both backends
    have (PostgreSQL's percentile_cont has no SQLite counterpart)."""
    k: ColumnElement[Any] = rows.c[key]
    v: ColumnElement[Any] = rows.c[value]
    ranked = select(
        k.label("key"),
        v.label("value"),
        func.row_number().over(partition_by=k, order_by=v).label("rank"),
        func.count().over(partition_by=k).label("size"),
    ).subquery()
    # Integer division on both backends: ranks (n + 1) / 2 and (n + 2) / 2 are the middle.
    middle = or_(
        ranked.c.rank == (ranked.c.size + 1) // 2, ranked.c.rank == (ranked.c.size + 2) // 2
    )
    return (
        select(ranked.c.key, func.avg(ranked.c.value).label("median"))
        .where(middle)
        .group_by(ranked.c.key)
        .subquery()
    )
