"""One `duplex serve` for the whole session (see harness.py)."""

import pytest

from harness import start_server


@pytest.fixture(scope="session")
def server():
    srv = start_server()
    yield srv
    srv.stop()


@pytest.fixture(autouse=True)
def server_survives(server):
    yield
    assert server.alive(), "duplex exited during the test; see server.log"
