"""The README's first command runs the shipped demo config and says how to log in."""

from __future__ import annotations

import asyncio
import signal
import socket
import ssl
from pathlib import Path

import aiohttp

from tests.helpers import free_port, node_process

ROOT = Path(__file__).resolve().parents[1]


async def test_demo_node_starts_tells_how_to_log_in_and_stops(tmp_path: Path) -> None:
    port = free_port()
    process = await node_process(
        ROOT / "config.yaml", port, cwd=tmp_path, stderr=asyncio.subprocess.PIPE
    )
    assert process.stderr is not None
    lines: list[str] = []
    try:
        async with asyncio.timeout(20):
            while not any("log in:" in line for line in lines):
                line = (await process.stderr.readline()).decode()
                assert line, "the node exited: " + "".join(lines)
                lines.append(line)
        assert any(f"http://127.0.0.1:{port}/" in line for line in lines)
        assert "password = name + '-demo'" in "".join(lines)
        async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as http:
            login = {"name": "operator", "password": "operator-demo"}
            async with http.post("/api/login", json=login) as r:
                assert r.status == 200
    finally:
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(10):
            await process.communicate()
    assert process.returncode == 0
    assert (tmp_path / "var" / "demo" / "node.sqlite").exists()


async def test_a_taken_port_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        process = await node_process(
            ROOT / "config.yaml", port, cwd=tmp_path, stderr=asyncio.subprocess.PIPE
        )
        async with asyncio.timeout(20):
            _, err = await process.communicate()
    assert process.returncode == 1
    last = err.decode().strip().splitlines()[-1]
    assert last == (
        f"cannot listen on 127.0.0.1:{port}: address already in use;"
        " choose another address with --listen HOST:PORT"
    )


async def test_a_second_node_on_the_same_data_dir_is_refused_before_it_opens_anything(
    tmp_path: Path,
) -> None:
    first = await node_process(
        ROOT / "config.yaml", free_port(), cwd=tmp_path, stderr=asyncio.subprocess.PIPE
    )
    assert first.stderr is not None
    try:
        async with asyncio.timeout(20):
            while b"log in:" not in await first.stderr.readline():
                assert first.returncode is None
        second = await node_process(
            ROOT / "config.yaml", free_port(), cwd=tmp_path, stderr=asyncio.subprocess.PIPE
        )
        async with asyncio.timeout(20):
            _, err = await second.communicate()
    finally:
        first.send_signal(signal.SIGTERM)
        async with asyncio.timeout(10):
            await first.communicate()
    assert second.returncode == 1
    # Not "recordings scanned": the first node's open recordings were left alone.
    assert err.decode().strip().splitlines() == [
        f"another node (pid {first.pid}) is running on data_dir var/demo:"
        " stop it, or give this one a node.data_dir of its own"
    ]
    assert first.returncode == 0


async def test_tls_node_serves_https_and_marks_its_cookie_secure(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    make_certificate(cert, key)
    config = tmp_path / "tls.yaml"
    config.write_text(
        (ROOT / "config.yaml")
        .read_text()
        .replace(
            "  data_dir: var/demo\n",
            f"  data_dir: {tmp_path / 'data'}\n  tls: {{cert: '{cert}', key: '{key}'}}\n",
        )
    )
    port = free_port()
    process = await node_process(config, port, stderr=asyncio.subprocess.PIPE)
    assert process.stderr is not None
    try:
        async with asyncio.timeout(20):
            while b"https://127.0.0.1" not in (line := await process.stderr.readline()):
                assert line, "the node exited"
        context = ssl.create_default_context(cafile=str(cert))
        async with aiohttp.ClientSession() as http:
            login = {"name": "operator", "password": "operator-demo"}
            async with http.post(
                f"https://127.0.0.1:{port}/api/login", json=login, ssl=context
            ) as r:
                assert r.status == 200
                assert "Secure" in r.headers["Set-Cookie"]
    finally:
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(10):
            await process.communicate()


def make_certificate(cert: Path, key: Path) -> None:
    """A self-signed certificate for 127.0.0.1 (the `cryptography` aiortc brings)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    private = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(private, hashes.SHA256())
    )
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
