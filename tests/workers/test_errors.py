"""Which failures of a handler the runner waits out, and which count against the entry."""

from __future__ import annotations

import psycopg
import pytest
from psycopg import errors as pg
from redis import exceptions as redis_errors

from workers.errors import is_transient


@pytest.mark.parametrize(
    "error",
    [
        ConnectionRefusedError(111, "Connection refused"),
        TimeoutError(),
        redis_errors.ConnectionError("Connection reset by peer"),
        redis_errors.BusyLoadingError("Redis is loading the dataset in memory"),
        redis_errors.ReadOnlyError("You can't write against a read only replica."),
        psycopg.OperationalError("connection failed: Connection refused"),
        psycopg.InterfaceError("the connection is closed"),
        pg.AdminShutdown("terminating connection due to administrator command"),
        pg.DeadlockDetected("deadlock detected"),
        pg.SerializationFailure("could not serialize access"),
        pg.TooManyConnections("sorry, too many clients already"),
        pg.DiskFull("could not extend file"),
    ],
    ids=repr,
)
def test_a_service_away_or_busy_is_waited_out(error: Exception) -> None:
    """Connection failures, shutdowns, deadlocks and full servers are transient."""
    assert is_transient(error)


@pytest.mark.parametrize(
    "error",
    [
        ValueError("cannot handle it"),
        OverflowError("date value out of range"),
        redis_errors.ResponseError("WRONGTYPE Operation against a key"),
        pg.CheckViolation("no partition of relation found for row"),
        pg.NumericValueOutOfRange("value out of range"),
        pg.OutOfMemory("out of shared memory"),
        pg.ConfigurationLimitExceeded("too many range table entries"),
    ],
    ids=repr,
)
def test_a_failure_the_work_causes_counts_against_the_entry(error: Exception) -> None:
    """Wrong data, and a transaction too big for the server, are not transient."""
    assert not is_transient(error)
