"""The recorder's audio: G.711 to AAC keeps its time through jitter and gaps; HE-AAC is left out."""

from __future__ import annotations

import itertools
from fractions import Fraction

import av
import numpy as np

from ingest.packet import MediaPacket
from relay.record.audio import AacSource, AudioFormat

RATE = 8000


def alaw_packets(starts: list[int], samples: int = 160) -> list[MediaPacket]:
    """Real G.711 A-law packets of a tone, at the given sample times."""
    encoder = av.CodecContext.create("pcm_alaw", "w")
    encoder.sample_rate, encoder.layout, encoder.format = RATE, "mono", "s16"
    packets = []
    for start in starts:
        tone = (np.sin(np.arange(start, start + samples) * 0.3) * 8000).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(tone[None, :], format="s16", layout="mono")
        frame.sample_rate = RATE
        packets += [
            MediaPacket("audio", bytes(p), start, Fraction(1, RATE), True, 0.0)
            for p in encoder.encode(frame)
        ]
    return packets


def test_g711_becomes_aac_on_the_camera_timeline_through_jitter_and_a_gap() -> None:
    source = AacSource(AudioFormat("pcm_alaw", RATE, 1, b""), "cam")
    # 4 s of 20 ms packets whose times wobble by a sample (RTP rounding), then a
    # 2 s gap (the camera's audio stopped), then 2 s more
    starts = [n * 160 + (n % 3 == 1) for n in range(200)]
    starts += [6 * RATE + n * 160 for n in range(100)]
    units = [u for p in alaw_packets(starts) for u in source.units(p)]
    times = [pts for _, pts in units]
    assert times == sorted(times) and len(set(times)) == len(times)
    before = [t for t in times if t < 5 * RATE]
    after = [t for t in times if t >= 5 * RATE]
    # AAC frames are 1024 samples; the encoder holds back about two of them
    assert abs(before[-1] + 1024 - 4 * RATE) <= 3 * 1024, before[-3:]
    assert abs(after[0] - 6 * RATE) <= 1024, after[:3]  # starts afresh where the audio resumes
    assert all(b - a == 1024 for a, b in itertools.pairwise(before))
    decoder = av.CodecContext.create("aac", "r")
    decoder.sample_rate, decoder.layout = RATE, "mono"
    decoded = sum(f.samples for data, _ in units for f in decoder.decode(av.Packet(data)))
    assert decoded >= 5.5 * RATE  # about all of it, a real AAC stream


def test_aac_other_than_lc_is_not_recorded() -> None:
    he_aac = bytes.fromhex("2b920800")  # object type 5 (SBR) over 24 kHz
    source = AacSource(AudioFormat("aac", 48000, 2, he_aac), "cam")
    assert not source.usable
    packet = MediaPacket("audio", b"\x21\x00", 0, Fraction(1, 48000), True, 0.0)
    assert source.units(packet) == []
    lc = AacSource(AudioFormat("aac", 16000, 1, bytes.fromhex("1408")), "cam")
    assert lc.usable and lc.units(packet) == [(packet.data, 0)]
