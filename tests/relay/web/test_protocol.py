"""The HTTP connection itself, over raw sockets against a real node: read
timeouts, and aiohttp's own refusals in one line that never echoes the request."""

from __future__ import annotations

import asyncio
import time

import pytest

from relay.web import protocol
from tests.conftest import ADMIN_TOKEN, Node, NodeFactory, node_yaml

CAMERAS = "  - {id: gate, name: Gate, site: village, main: 'synthetic://160x120?fps=5'}\n"
MARK = b"ECHOME"  # in every malformed request: must never come back


@pytest.fixture
async def node(start_node: NodeFactory, monkeypatch: pytest.MonkeyPatch) -> Node:
    monkeypatch.setattr(protocol, "HEADER_TIMEOUT", 1.0)
    monkeypatch.setattr(protocol, "BODY_STALL", 1.0)
    monkeypatch.setattr(protocol, "BODY_TIMEOUT", 3.0)
    monkeypatch.setattr(protocol, "IDLE_TIMEOUT", 2.0)
    return await start_node(node_yaml(CAMERAS))


async def connect(node: Node) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    host, port = node.url.removeprefix("http://").split(":")
    return await asyncio.open_connection(host, int(port))


async def until_closed(reader: asyncio.StreamReader, within: float) -> tuple[bytes, float]:
    """Everything the node sends until it closes, and how long that took."""
    started = time.monotonic()
    async with asyncio.timeout(within):
        data = await reader.read()
    return data, time.monotonic() - started


def status_and_body(answer: bytes) -> tuple[int, bytes]:
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), body


async def test_half_a_header_is_cut_off(node: Node) -> None:
    reader, writer = await connect(node)
    writer.write(b"GET /api/me HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    answer, took = await until_closed(reader, 10)
    assert 0.9 <= took < 6, took
    assert status_and_body(answer) == (408, b"the request header did not come in time\n")
    writer.close()


async def test_a_header_dribbled_a_byte_at_a_time_is_cut_off(node: Node) -> None:
    reader, writer = await connect(node)
    request = b"GET /api/me HTTP/1.1\r\nHost: x\r\n" + b"X-Pad: " + b"a" * 100
    started = time.monotonic()

    async def dribble() -> None:
        for byte in request:
            writer.write(bytes([byte]))
            await asyncio.sleep(0.1)

    sender = asyncio.create_task(dribble())
    answer, _ = await until_closed(reader, 10)
    sender.cancel()
    assert 0.9 <= time.monotonic() - started < 6
    assert status_and_body(answer)[0] == 408
    writer.close()


async def test_a_header_and_no_body_is_answered_408_and_closed(node: Node) -> None:
    reader, writer = await connect(node)
    writer.write(
        b"POST /api/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 100\r\n\r\n{"
    )
    answer, took = await until_closed(reader, 10)
    assert 0.9 <= took < 6, took
    assert status_and_body(answer) == (408, b"the request body did not come in time\n")
    writer.close()


async def test_a_body_that_keeps_coming_too_slowly_is_cut_off(node: Node) -> None:
    reader, writer = await connect(node)
    writer.write(
        b"POST /api/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 1000\r\n\r\n"
    )

    async def dribble() -> None:
        for _ in range(1000):
            writer.write(b" ")
            await asyncio.sleep(0.3)  # never a stall, but far too slow

    sender = asyncio.create_task(dribble())
    answer, took = await until_closed(reader, 15)
    sender.cancel()
    assert 2.5 <= took < 9, took
    assert status_and_body(answer)[0] == 408
    writer.close()


async def test_an_idle_connection_is_closed_and_a_steady_one_is_served(node: Node) -> None:
    reader, writer = await connect(node)
    answer, took = await until_closed(reader, 10)
    assert answer == b"" and 1.5 <= took < 7, took
    writer.close()

    # A body in pieces with pauses under the stall bound, then a second request
    # on the same connection: both answered.
    reader, writer = await connect(node)
    body = b'{"name": "admin", "password": "wrong"}'
    writer.write(
        b"POST /api/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n" % len(body)
    )
    for piece in (body[:10], body[10:20], body[20:]):
        await asyncio.sleep(0.5)
        writer.write(piece)
    writer.write(
        b"GET /api/me HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n"
        % ADMIN_TOKEN.encode()
    )
    answers, _ = await until_closed(reader, 10)  # closed when idle again
    writer.close()
    assert answers.startswith(b"HTTP/1.1 401"), answers
    assert answers.count(b"HTTP/1.1 200") == 1 and answers.endswith(b"}"), answers


MALFORMED = [
    b"ECHOME / HTTP/1.1\r\nHost: x\r\n\r\n",
    b"\x16\x03\x01\x02\x00ECHOME\r\n\r\n",  # TLS to the HTTP port
    b"GET /ECHOME\x00 HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET / HTTP/9.9ECHOME\r\nHost: x\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nBad Header ECHOME: y\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nX: ECHOME\x01\r\n\r\n",
    b"GET /" + b"ECHOME" * 2000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nX-Long: " + b"ECHOME" * 2000 + b"\r\n\r\n",
    b"POST /api/login HTTP/1.1\r\nHost: x\r\nContent-Length: ECHOME\r\n\r\n",
    b"POST /api/login HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nECHOME",
    b"POST /api/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    b"Transfer-Encoding: chunked\r\n\r\nECHOME\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X-ECHOME: 1\r\n" * 300 + b"\r\n",
]


@pytest.mark.parametrize("raw", MALFORMED, ids=range(len(MALFORMED)))
async def test_a_malformed_request_is_refused_in_one_line_without_echo(
    node: Node, raw: bytes
) -> None:
    reader, writer = await connect(node)
    writer.write(raw)
    answer, _ = await until_closed(reader, 10)
    writer.close()
    status, body = status_and_body(answer)
    assert 400 <= status < 500, answer
    assert MARK not in answer and MARK.lower() not in answer.lower(), answer
    assert body.endswith(b"\n") and body.count(b"\n") == 1 and len(body) > 5, body


def test_the_installed_aiohttp_is_one_the_patch_was_checked_on() -> None:
    assert protocol.checked(), "relay/web/protocol.py: check it on this aiohttp, then CHECKED"


NOT_TEXT_CREDENTIALS = [
    b"Authorization: Bearer \xed\xa0\x80\xff",
    b"Authorization: Bearer test-admin-token\xff",
    b"Cookie: vw_session=\xed\xa0\x80\xff",
]


@pytest.mark.parametrize("header", NOT_TEXT_CREDENTIALS, ids=range(len(NOT_TEXT_CREDENTIALS)))
async def test_a_credential_of_raw_bytes_is_no_credential(node: Node, header: bytes) -> None:
    reader, writer = await connect(node)
    writer.write(b"GET /api/me HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + header + b"\r\n\r\n")
    answer, _ = await until_closed(reader, 10)
    writer.close()
    assert status_and_body(answer) == (401, b"log in first\n"), answer
