"""A viewer's SDP offer: parsed, and the H.264 profiles it takes, or a 400 saying why."""

from __future__ import annotations

import contextlib

from aiortc.sdp import H264Profile, SessionDescription, parse_h264_profile_level_id

from relay.refusal import Refused


def parse_offer(offer: str) -> tuple[SessionDescription, set[H264Profile]]:
    """The offer and the H.264 profiles it takes, or a 400 saying what is wrong."""
    try:
        parsed = SessionDescription.parse(offer)
    except (ValueError, IndexError, KeyError, AssertionError) as exc:
        raise Refused(400, f"unparsable SDP offer ({type(exc).__name__})") from None
    if not any(m.kind == "video" for m in parsed.media):
        raise Refused(400, "the offer has no video")
    offered = _offered_h264_profiles(parsed)
    if not offered:
        raise Refused(400, "the offer has no H.264 video (packetization-mode 1)")
    return parsed, offered


def _offered_h264_profiles(parsed: SessionDescription) -> set[H264Profile]:
    profiles: set[H264Profile] = set()
    for media in parsed.media:
        for codec in media.rtp.codecs if media.kind == "video" else []:
            if codec.name != "H264" or str(codec.parameters.get("packetization-mode")) != "1":
                continue
            with contextlib.suppress(ValueError):
                plid = str(codec.parameters.get("profile-level-id", "42e01f"))
                profiles.add(parse_h264_profile_level_id(plid)[0])
    return profiles
