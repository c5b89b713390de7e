"""Reading rows by column name: how ``store`` turns what a query returns into its shapes.

A query names its columns after the fields of the shape it fills (``SELECT s.id AS stop_id``)
and a psycopg row factory builds the shape from those names:

* ``class_row(Shape)`` when the columns are exactly the shape's fields;
* ``dict_row`` and a reader function when a field is computed from columns (time windows
  zipped from two array columns, a place from three);
* ``scalar_row`` for a single value, such as ``RETURNING id``.

No column is read by its position, so adding or reordering a column in a select list cannot
shift a value into the wrong field. Results that are plain tuples in a public signature are
unpacked into named variables where they are built.
"""

from __future__ import annotations

from typing import Any, LiteralString, TypeVar

from psycopg import AsyncConnection
from psycopg.abc import Params
from psycopg.rows import AsyncRowFactory

R = TypeVar("R")
T = TypeVar("T")


async def fetch_one(
    conn: AsyncConnection[Any],
    rows: AsyncRowFactory[R],
    query: LiteralString,
    params: Params | None = None,
) -> R | None:
    """The first row ``query`` gives, built by ``rows``; None when it gives no row."""
    async with conn.cursor(row_factory=rows) as cursor:
        await cursor.execute(query, params)
        return await cursor.fetchone()


async def fetch_all(
    conn: AsyncConnection[Any],
    rows: AsyncRowFactory[R],
    query: LiteralString,
    params: Params | None = None,
) -> list[R]:
    """Every row ``query`` gives, in its order, each built by ``rows``."""
    async with conn.cursor(row_factory=rows) as cursor:
        await cursor.execute(query, params)
        return await cursor.fetchall()


def returned(row: T | None) -> T:
    """The row an ``INSERT ... RETURNING`` gave; such a statement always gives one."""
    if row is None:
        raise RuntimeError("expected INSERT ... RETURNING to give a row, got none")
    return row
