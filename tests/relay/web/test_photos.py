"""Lookout photos: decoded before they are kept, served as the node's own JPEG."""

from __future__ import annotations

import base64
import io
import struct
import zlib
from typing import Any

import aiohttp
from PIL import Image

from relay.web.events import BUS
from tests.conftest import NodeFactory, users_yaml

CONFIG = (
    "node: {id: v1, name: V1}\n"
    "sites: [{id: east, name: East}]\n"
    "cameras:\n"
    "  - {id: e1, name: E1, site: east, main: 'synthetic://160x120?fps=5'}\n"
    + users_yaml(("officer", "officer", "east"))
)
OFFICER = {"Authorization": "Bearer officer-token"}


def encoded(image: Image.Image, kind: str, **options: Any) -> bytes:
    out = io.BytesIO()
    image.save(out, kind, **options)
    return out.getvalue()


def png_claiming(width: int, height: int) -> bytes:
    """A small, well-formed PNG whose header claims a huge picture."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(bytes(1000)))
        + chunk(b"IEND", b"")
    )


def jpeg_claiming(width: int, height: int) -> bytes:
    """A real JPEG whose frame header is rewritten to claim another size."""
    data = bytearray(encoded(Image.new("RGB", (16, 16), "red"), "JPEG"))
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def lookout(photo: object) -> dict[str, Any]:
    return {"type": "lookout", "text": "wanted", "photo": photo}


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


async def test_only_decodable_jpeg_or_png_photos_are_taken(start_node: NodeFactory) -> None:
    node = await start_node(CONFIG)
    picture = Image.new("RGB", (64, 48), "navy")
    real_jpeg = encoded(picture, "JPEG")
    refused = {
        "html behind a JPEG's first bytes": b64(b"\xff\xd8<html><script>alert(1)</script>"),
        "a GIF": b64(encoded(picture, "GIF")),
        "a BMP": b64(encoded(picture, "BMP")),
        "a cut-off JPEG": b64(real_jpeg[: len(real_jpeg) // 2]),
        "a PNG bomb": b64(png_claiming(20000, 20000)),
        "a PNG past its own bound": b64(png_claiming(5000, 4000)),
        "a JPEG bomb": b64(jpeg_claiming(60000, 60000)),
        "an empty photo": "",
    }
    wrong_type: list[object] = [12345, ["x"], {"data": "x"}, True]
    async with aiohttp.ClientSession(node.url, headers=OFFICER) as http:
        for what, photo in refused.items():
            async with http.post("/api/events", json=lookout(photo)) as r:
                text = await r.text()
                assert r.status == 400, (what, r.status, text)
                assert text.count("\n") == 1, text
        for wrong in wrong_type:
            async with http.post("/api/events", json=lookout(wrong)) as r:
                assert r.status == 400, (wrong, r.status)
                assert (await r.text()) == "photo must be text: a JPEG or PNG in base64\n"
    assert await node.app[BUS].store.query({}) == []


async def test_a_photo_is_served_as_a_clean_jpeg_the_browser_never_sniffs(
    start_node: NodeFactory,
) -> None:
    node = await start_node(CONFIG)
    exif = Image.Exif()
    exif[0x010E] = "secret description"  # ImageDescription
    with_exif = encoded(Image.new("RGB", (64, 48), "navy"), "JPEG", exif=exif.tobytes())
    polyglot = with_exif + b"<script>alert(1)</script>"
    transparent = encoded(Image.new("RGBA", (40, 30), (255, 0, 0, 0)), "PNG")
    large = encoded(Image.new("RGB", (4000, 3000), "green"), "JPEG", quality=30)
    async with aiohttp.ClientSession(node.url, headers=OFFICER) as http:
        for photo, size in ((polyglot, (64, 48)), (transparent, (40, 30)), (large, (2048, 1536))):
            async with http.post("/api/events", json=lookout(b64(photo))) as r:
                assert r.status == 201, await r.text()
                event = await r.json()
            async with http.get(event["image"]) as r:
                assert r.status == 200
                assert r.content_type == "image/jpeg"
                assert r.headers["X-Content-Type-Options"] == "nosniff"
                served = await r.read()
            with Image.open(io.BytesIO(served)) as image:
                assert image.format == "JPEG" and image.size == size
                assert not image.getexif()
                if photo is transparent:
                    assert image.convert("RGB").getpixel((5, 5)) == (255, 255, 255)
            assert b"<script>" not in served and b"secret" not in served
        async with http.get("/api/me") as r:
            assert r.headers["X-Content-Type-Options"] == "nosniff"
