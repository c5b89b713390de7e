"""Reading rows by name: shapes take columns by their names, and absent rows read as absent."""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
import pytest
from psycopg.rows import class_row, scalar_row

from store.rows import fetch_all, fetch_one, returned


@dataclass(frozen=True)
class Pair:
    number: int
    word: str


async def test_columns_fill_fields_by_name_in_any_order(db: psycopg.AsyncConnection) -> None:
    """A shape's fields take the columns of the same names, whatever order the select lists."""
    pair = await fetch_one(db, class_row(Pair), "SELECT 'two' AS word, 2 AS number")
    assert pair == Pair(number=2, word="two")


async def test_rows_come_in_query_order_with_parameters(db: psycopg.AsyncConnection) -> None:
    """fetch_all passes the parameters and keeps the query's row order."""
    countdown = await fetch_all(db, scalar_row, "SELECT generate_series(%s, 1, -1)", (3,))
    assert countdown == [3, 2, 1]


async def test_no_row_reads_as_none_or_empty(db: psycopg.AsyncConnection) -> None:
    """A query without rows gives None from fetch_one and an empty list from fetch_all."""
    assert await fetch_one(db, scalar_row, "SELECT 1 WHERE false") is None
    assert await fetch_all(db, class_row(Pair), "SELECT 1 AS number, 'x' AS word WHERE false") == []


def test_returned_refuses_a_missing_row() -> None:
    """returned names what it expected when an INSERT ... RETURNING gave no row."""
    assert returned(7) == 7
    with pytest.raises(RuntimeError, match=r"expected INSERT \.\.\. RETURNING to give a row"):
        returned(None)
