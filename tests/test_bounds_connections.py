"""Slow clients are cut off (issue 10, defect 6): raw sockets against a real server process.

A client that does not finish its request headers within COUPONSVC_HEADER_TIMEOUT gets a 408 and is
disconnected (also on a kept-alive connection); idle keep-alive connections are closed after
COUPONSVC_KEEPALIVE_TIMEOUT; connections over COUPONSVC_MAX_CONNECTIONS are answered 503 and closed while
the service keeps answering once the stalled ones are gone.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.support.server import ServerProcess

HEADER_TIMEOUT = 1.0
KEEPALIVE = 1.0
MAX_CONNECTIONS = 40


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path_factory.mktemp("guarded"), {
        "COUPONSVC_HEADER_TIMEOUT": str(HEADER_TIMEOUT), "COUPONSVC_KEEPALIVE_TIMEOUT": str(KEEPALIVE),
        "COUPONSVC_MAX_CONNECTIONS": str(MAX_CONNECTIONS), "COUPONSVC_WORKER": "false"})
    proc.start()
    yield proc
    proc.stop()


def connect(server: ServerProcess) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    return s


def read_response(s: socket.socket) -> bytes:
    """One whole /health response (its JSON body ends with a brace)."""
    s.settimeout(5)
    data = b""
    while not data.endswith(b"}"):
        chunk = s.recv(65536)
        assert chunk, data
        data += chunk
    return data


def read_until_closed(s: socket.socket, limit: float) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection, and how long that took."""
    t0 = time.monotonic()
    s.settimeout(limit)
    data = b""
    try:
        while chunk := s.recv(4096):
            data += chunk
    except TimeoutError:
        raise AssertionError(f"the server kept the connection open for {limit}s (got {data[:200]!r})") from None
    except ConnectionResetError:
        pass
    return data, time.monotonic() - t0


def test_a_client_stalling_in_its_headers_gets_408_and_is_disconnected(guarded: ServerProcess) -> None:
    s = connect(guarded)
    s.sendall(b"POST /CustomerBilling/v13/Coupons/Dispatch HTTP/1.1\r\nHost: x\r\nContent-Type: appl")
    data, took = read_until_closed(s, HEADER_TIMEOUT + 5)
    s.close()
    assert data.startswith(b"HTTP/1.1 408 "), data[:200]
    assert HEADER_TIMEOUT * 0.8 <= took <= HEADER_TIMEOUT + 3


def test_a_client_that_sends_nothing_is_disconnected(guarded: ServerProcess) -> None:
    s = connect(guarded)
    data, took = read_until_closed(s, HEADER_TIMEOUT + 5)
    s.close()
    assert data.startswith(b"HTTP/1.1 408 ") and took <= HEADER_TIMEOUT + 3


def test_a_client_trickling_header_bytes_does_not_reset_the_timer(guarded: ServerProcess) -> None:
    s = connect(guarded)
    t0 = time.monotonic()
    s.sendall(b"GET /health HTTP/1.1\r\n")
    closed = False
    for i in range(int((HEADER_TIMEOUT + 4) / 0.2)):
        try:
            s.sendall(f"X-Slow-{i}: y\r\n".encode())
        except (BrokenPipeError, ConnectionResetError):
            closed = True
            break
        time.sleep(0.2)
        s.settimeout(0.01)
        try:
            if s.recv(4096) == b"":
                closed = True
                break
        except TimeoutError:
            pass
        except ConnectionResetError:
            closed = True
            break
    s.close()
    assert closed, "a client sending one header line every 0.2 s was never cut off"
    assert time.monotonic() - t0 <= HEADER_TIMEOUT + 3


def test_a_kept_alive_connection_is_timed_on_its_next_request_head_too(guarded: ServerProcess) -> None:
    s = connect(guarded)
    s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    first = read_response(s)
    assert first.startswith(b"HTTP/1.1 200 "), first[:200]
    s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")  # the next request's head, never finished
    data, took = read_until_closed(s, HEADER_TIMEOUT + 5)
    s.close()
    assert data.startswith(b"HTTP/1.1 408 "), data[:200]


def test_idle_keep_alive_connections_are_closed(guarded: ServerProcess) -> None:
    s = connect(guarded)
    s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    assert read_response(s).startswith(b"HTTP/1.1 200 ")
    data, took = read_until_closed(s, KEEPALIVE + 5)
    s.close()
    assert data == b"" and took <= KEEPALIVE + 3


def test_a_complete_request_is_served_normally(guarded: ServerProcess) -> None:
    s = connect(guarded)
    s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    data, _ = read_until_closed(s, 10)
    s.close()
    assert data.startswith(b"HTTP/1.1 200 ") and b'"status":"ok"' in data


def test_connections_over_the_cap_are_refused_and_the_service_recovers(guarded: ServerProcess) -> None:
    stalled = [connect(guarded) for _ in range(MAX_CONNECTIONS)]
    for s in stalled:
        s.sendall(b"GET /health HTTP/1.1\r\n")
    time.sleep(0.2)
    extra = connect(guarded)
    data, took = read_until_closed(extra, 5)
    extra.close()
    assert data.startswith(b"HTTP/1.1 503 ") and b"Retry-After: 1" in data, data[:200]
    assert took < 2
    # the stalled ones are cut at the header timeout, then the service answers again
    for s in stalled:
        read_until_closed(s, HEADER_TIMEOUT + 5)
        s.close()
    assert httpx.get(f"{guarded.url}/health", timeout=5).status_code == 200


def test_many_stalled_clients_are_all_cut_off(guarded: ServerProcess) -> None:
    """Hundreds of slowloris sockets (most of them refused over the cap) hold nothing for long."""
    sockets = [connect(guarded) for _ in range(300)]
    for s in sockets:
        try:
            s.sendall(b"POST /Api/Billing/v13/CustomerBillingService.svc HTTP/1.1\r\nHost: x\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
    t0 = time.monotonic()
    for s in sockets:
        read_until_closed(s, max(0.5, HEADER_TIMEOUT + 5 - (time.monotonic() - t0)))
        s.close()
    assert time.monotonic() - t0 <= HEADER_TIMEOUT + 5
    assert httpx.get(f"{guarded.url}/health", timeout=5).status_code == 200
