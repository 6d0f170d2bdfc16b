"""A real WHEP offer, made by aiortc, for tests that send one."""

from __future__ import annotations

from relay.webrtc.client import WhepClient


async def offer_sdp() -> str:
    client = WhepClient("http://127.0.0.1:1/")
    client.pc.addTransceiver("video", direction="recvonly")
    await client.pc.setLocalDescription(await client.pc.createOffer())
    sdp: str = client.pc.localDescription.sdp
    await client.pc.close()
    return sdp
