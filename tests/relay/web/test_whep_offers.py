"""WHEP offers the node cannot use: a 400 with a one-line reason, and nothing
left behind (no session, no subscription, no socket). Real offers from Chromium
and aiortc (tests/relay/webrtc/offers/), mutated by hypothesis."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relay.web.whep import WHEP
from relay.webrtc.service import WhepService
from tests.conftest import node_yaml
from tests.helpers import open_fds
from tests.hostile import FAST, ThreadedNode, assert_clean

OFFERS = Path(__file__).resolve().parents[1] / "webrtc" / "offers"
REAL = {path.stem: path.read_bytes().decode() for path in sorted(OFFERS.glob("*.sdp"))}
# Not recorded: a recorder's subscription would stand beside the viewers'.
CAMERAS = (
    "  - {id: gate, name: Gate, site: village, main: 'synthetic://160x120?fps=5',"
    " record: {mode: 'off'}}\n"
)
SDP = {"Content-Type": "application/sdp"}
NASTY_LINES = [
    "a=fmtp:120 apt=96",
    "a=fmtp:99",
    "a=fmtp:abc x=y",
    "a=msid-semantic:",
    "a=msid-semantic",
    "a=group:",
    "a=group",
    "a=group:BUNDLE",
    "a=group:BUNDLE 7 8",
    "a=setup:",
    "a=setup:bogus",
    "a=setup:active",
    "a=rtpmap:96",
    "a=rtpmap:96 H264",
    "a=rtpmap:xx H264/90000",
    "a=rtpmap:99 H264/abc",
    "a=rtcp-fb:999 nack",
    "a=ssrc:abc cname:x",
    "a=ssrc:1",
    "a=ssrc-group:FID",
    "a=ssrc-group:FID x",
    "a=extmap:x urn:x",
    "a=extmap:1",
    "a=candidate:1 1 udp x 127.0.0.1 5 typ host",
    "a=candidate:1",
    "a=candidate:1 1 udp 1 999.1.1.1 5 typ host",
    "a=candidate:1 1 udp 1 x.local 5 typ host",
    "a=ice-ufrag:",
    "a=ice-pwd:",
    "a=ice-options:trickle",
    "a=fingerprint:sha-256",
    "a=fingerprint:md5 00",
    "a=fingerprint:",
    "a=mid:",
    "a=mid:0",
    "a=rtcp:x",
    "a=rtcp:9 IN IP4",
    "a=sctp-port:abc",
    "a=max-message-size:x",
    "a=sendrecv",
    "a=inactive",
    "a=rid:h send",
    "a=simulcast:send h;l",
    "m=video 9 UDP/TLS/RTP/SAVPF",
    "m=video x UDP/TLS/RTP/SAVPF 96",
    "m=video 9 RTP/AVP 96",
    "m=application 9 UDP/DTLS/SCTP webrtc-datachannel",
    "m=audio 9 UDP/TLS/RTP/SAVPF 0",
    "m=",
    "c=IN IP4",
    "c=IN IP6 x",
    "c=",
    "o=- x x IN IP4 0.0.0.0",
    "t=x",
    "v=1",
    "b=AS:x",
    "",
    "x",
    "=",
]
UNUSABLE: dict[
    str, Callable[[str], str]
] = {  # the classes the review named, made from a real offer
    "fmtp without rtpmap": lambda sdp: sdp.replace(
        "a=rtcp-mux\r\n", f"a=rtcp-mux\r\na=fmtp:{_unmapped(sdp)} apt=96\r\n", 1
    ),
    "msid-semantic without value": lambda sdp: _replace_line(sdp, "a=msid-semantic", ""),
    "group without value": lambda sdp: _replace_line(sdp, "a=group", ""),
    "no setup": lambda sdp: "".join(
        line for line in sdp.splitlines(keepends=True) if not line.startswith("a=setup")
    ),
    "no fingerprint": lambda sdp: "".join(
        line for line in sdp.splitlines(keepends=True) if not line.startswith("a=fingerprint")
    ),
    "too many media sections": lambda sdp: sdp + sdp[sdp.index("m=") :] * 3,
    "too many candidates": lambda sdp: sdp.replace(
        "a=rtcp-mux\r\n",
        "a=rtcp-mux\r\n"
        + "".join(f"a=candidate:{i} 1 udp 1 198.51.100.{i} 9 typ host\r\n" for i in range(40)),
        1,
    ),
    "no ice credentials": lambda sdp: "".join(
        line for line in sdp.splitlines(keepends=True) if not line.startswith("a=ice-")
    ),
}


def _unmapped(sdp: str) -> int:
    return next(pt for pt in range(96, 128) if f"a=rtpmap:{pt} " not in sdp)


def _replace_line(sdp: str, prefix: str, value: str) -> str:
    return "".join(
        prefix + (":" + value if value else "") + "\r\n" if line.startswith(prefix) else line
        for line in sdp.splitlines(keepends=True)
    )


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadedNode]:
    config = node_yaml(CAMERAS).replace(
        "webrtc: {host_addresses: [127.0.0.1]}",
        "webrtc: {host_addresses: [127.0.0.1], max_viewers: 1000, max_viewers_per_camera: 1000}",
    )
    with ThreadedNode(config, tmp_path_factory.mktemp("offers")) as node:
        assert offer_and_clean_up(node, REAL["aiortc"])[0] == 201  # the camera is sending
        yield node


def service(node: ThreadedNode) -> WhepService:
    assert node.app is not None
    return node.app[WHEP]


def settle(predicate: Callable[[], bool], within: float = 10) -> bool:
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def offer_and_clean_up(node: ThreadedNode, offer: str) -> tuple[int, str]:
    """POST the offer; a session it made is deleted. Returns (status, text)."""
    import urllib.request

    request = urllib.request.Request(
        node.url + "/whep/gate",
        data=offer.encode("utf-8", "surrogatepass"),
        method="POST",
        headers={"Authorization": "Bearer test-admin-token", **SDP},
    )
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            status, text = response.status, response.read().decode(errors="replace")
            location = response.headers["Location"]
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(errors="replace")
    assert status == 201 and location
    deleted, _ = node.request("DELETE", location)
    assert deleted in (200, 404)  # 404: its connection failed already, and ended it
    return status, text


def assert_nothing_left(node: ThreadedNode, fds: int) -> None:
    whep = service(node)
    channel = whep.hub.channel("gate")
    assert channel is not None
    assert settle(lambda: not whep.sessions), f"sessions left: {len(whep.sessions)}"
    assert settle(lambda: not channel.subscribers), "subscriptions left"
    assert settle(lambda: open_fds() <= fds), f"fds: {open_fds()} > {fds}"


def test_the_real_offers_are_answered(node: ThreadedNode) -> None:
    for name, offer in REAL.items():
        status, text = offer_and_clean_up(node, offer)
        assert status == 201, (name, text)
        assert "a=setup:" in text and "H264" in text


@pytest.mark.parametrize("name", sorted(UNUSABLE))
@pytest.mark.parametrize("real", sorted(REAL))
def test_an_offer_the_node_cannot_use_is_a_400_that_leaves_nothing(
    node: ThreadedNode, name: str, real: str
) -> None:
    fds = open_fds()
    status, text = offer_and_clean_up(node, UNUSABLE[name](REAL[real]))
    assert status == 400, (name, status, text)
    assert text.endswith("\n") and text.count("\n") == 1, text
    assert_nothing_left(node, fds)


def mutations(lines: list[str]) -> st.SearchStrategy[list[str]]:
    index = st.integers(0, len(lines) - 1)
    edit = st.one_of(
        st.tuples(st.just("delete"), index, st.just("")),
        st.tuples(st.just("insert"), index, st.sampled_from(NASTY_LINES)),
        st.tuples(st.just("replace"), index, st.sampled_from(NASTY_LINES)),
        st.tuples(st.just("value"), index, st.text(max_size=12)),
        st.tuples(st.just("cut"), index, st.just("")),
        st.tuples(st.just("double"), index, st.just("")),
    )
    return st.lists(edit, min_size=1, max_size=4).map(lambda edits: _apply(lines, edits))


def _apply(lines: list[str], edits: list[tuple[str, int, str]]) -> list[str]:
    out = list(lines)
    for kind, at, text in edits:
        i = at % max(len(out), 1)
        if not out:
            out.append(text)
        elif kind == "delete":
            del out[i]
        elif kind == "insert":
            out.insert(i, text)
        elif kind == "replace":
            out[i] = text
        elif kind == "value":
            head, sep, _ = out[i].partition(":")
            out[i] = head + (sep or ":") + text
        elif kind == "cut":
            out[i] = out[i][: len(out[i]) // 2]
        else:
            out.insert(i, out[i])
    return out


@settings(FAST, max_examples=200)
@given(
    offer=st.sampled_from(sorted(REAL)).flatmap(lambda name: mutations(REAL[name].splitlines())),
    ending=st.sampled_from(["\r\n", "\n"]),
)
def test_a_mutated_real_offer_never_fails_the_node_or_leaves_anything(
    node: ThreadedNode, offer: list[str], ending: str
) -> None:
    fds = open_fds()
    status, text = offer_and_clean_up(node, ending.join(offer) + ending)
    assert_clean(status, text)
    assert status in (201, 400), (status, text)
    assert text.endswith("\n") if status == 400 else True
    assert_nothing_left(node, fds)
