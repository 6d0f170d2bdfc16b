"""A viewer's SDP offer: parsed, checked for what it needs to ever connect, and
applied, or a 400 with a one-line reason. aiortc's parser and its
setRemoteDescription raise whatever they meet on odd SDP (KeyError,
AttributeError, StopIteration, ...): every such offer is the offer's fault."""

from __future__ import annotations

import contextlib
import logging

from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.exceptions import InvalidStateError, OperationError
from aiortc.sdp import H264Profile, SessionDescription, parse_h264_profile_level_id

from relay.refusal import Refused

logger = logging.getLogger(__name__)

MAX_MEDIA = 4  # a viewer takes video and audio (a data channel, perhaps)
MAX_CANDIDATES = 32  # a browser offers a few per network interface
FINGERPRINTS = frozenset(("sha-1", "sha-224", "sha-256", "sha-384", "sha-512"))


async def apply_offer(pc: RTCPeerConnection, offer: str) -> None:
    """The offer applied and answered, or a 400: what aiortc cannot take in an
    offer that passed _parse_offer is the offer's fault, whatever it raises."""
    try:
        await pc.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
        await pc.setLocalDescription(await pc.createAnswer())
    except (ValueError, OperationError, InvalidStateError) as exc:
        raise Refused(400, f"cannot answer this offer: {_one_line(exc)}") from None
    except Exception as exc:  # aiortc on odd SDP: KeyError, AttributeError, ...
        logger.info("offer refused: aiortc cannot answer it: %r", exc)
        raise Refused(400, f"cannot answer this offer ({type(exc).__name__})") from None


def _one_line(exc: Exception) -> str:
    text = " ".join(str(exc).split())[:200]
    return text if text.isprintable() and text else type(exc).__name__


def parse_offer(offer: str) -> tuple[SessionDescription, set[H264Profile]]:
    """The offer and the H.264 profiles it takes, or a 400 saying what is wrong."""
    try:
        parsed = SessionDescription.parse(offer)
    except Exception as exc:  # aiortc's parser on odd SDP raises what it happens to meet
        raise Refused(400, f"unparsable SDP offer ({type(exc).__name__})") from None
    if not any(m.kind == "video" for m in parsed.media):
        raise Refused(400, "the offer has no video")
    _check_transport(parsed)
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


def _check_transport(parsed: SessionDescription) -> None:
    """What every media section needs to ever connect (aiortc would answer some
    of these, or fail on them with a 500, and the viewer would wait for nothing),
    and bounds on what one offer may make the node do: a transport (and UDP
    sockets) per media section, a connectivity check per candidate (sent to
    whatever address the offer names)."""
    if len(parsed.media) > MAX_MEDIA:
        raise Refused(400, f"the offer has more than {MAX_MEDIA} media sections")
    for media in parsed.media:
        if len(media.ice_candidates) > MAX_CANDIDATES:
            raise Refused(400, f"the offer has more than {MAX_CANDIDATES} candidates a media")
        if media.kind not in ("audio", "video"):
            continue
        if not (media.ice and media.ice.usernameFragment and media.ice.password):
            raise Refused(400, f"the offer's {media.kind} has no ICE credentials (a=ice-ufrag/pwd)")
        if media.dtls is None:
            raise Refused(400, f"the offer's {media.kind} has no DTLS role (a=setup)")
        if not any(f.algorithm.lower() in FINGERPRINTS for f in media.dtls.fingerprints):
            raise Refused(400, f"the offer's {media.kind} has no DTLS fingerprint (a=fingerprint)")
