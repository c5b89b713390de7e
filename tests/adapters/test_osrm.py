"""The OSRM provider against a local HTTP server speaking the ``table`` API."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from adapters.osrm import OsrmProvider
from schemas.planning import Location
from solver.errors import MatrixError


class TableServer:
    """Answers /table/v1/driving/... with distances 1000·|i-j| m and durations 100·|i-j| s."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        self.answer_code = "Ok"
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.requests.append(self.path)
                coords = self.path.split("/table/v1/driving/")[1].split("?")[0].split(";")
                n = len(coords)
                body = {
                    "code": owner.answer_code,
                    "distances": [[1000.4 * abs(i - j) for j in range(n)] for i in range(n)],
                    "durations": [[100.0 * abs(i - j) for j in range(n)] for i in range(n)],
                }
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def osrm() -> Iterator[TableServer]:
    """A running table server."""
    server = TableServer()
    yield server
    server.close()


POINTS = [
    Location(lat=52.5, lon=13.4),
    Location(lat=52.51, lon=13.41),
    Location(lat=52.52, lon=13.42),
]


def test_matrix_comes_from_the_table_service_lon_first(osrm: TableServer) -> None:
    """Distances and durations are the service's, rounded; coordinates go as lon,lat."""
    matrix = OsrmProvider(osrm.url).matrix(POINTS, depart_epoch_s=0)
    assert matrix.distance_m[0] == [0, 1000, 2001]
    assert matrix.duration_s[2] == [200, 100, 0]
    assert "13.400000,52.500000;13.410000,52.510000" in osrm.requests[0]


def test_repeated_point_sets_are_served_from_the_cache(osrm: TableServer) -> None:
    """Asking twice for the same points makes one request."""
    provider = OsrmProvider(osrm.url)
    provider.matrix(POINTS, depart_epoch_s=0)
    provider.matrix(POINTS, depart_epoch_s=0)
    assert len(osrm.requests) == 1


def test_service_errors_become_matrix_errors(osrm: TableServer) -> None:
    """A non-Ok answer, and an unreachable service, raise MatrixError naming the problem."""
    osrm.answer_code = "TooBig"
    with pytest.raises(MatrixError, match="TooBig"):
        OsrmProvider(osrm.url).matrix(POINTS, depart_epoch_s=0)
    with pytest.raises(MatrixError, match="failed"):
        OsrmProvider("http://127.0.0.1:9", timeout_s=2).matrix(POINTS, depart_epoch_s=0)
