"""The peers section and PEER.CAMERA references, as an installer writes them."""

from __future__ import annotations

import pytest

from relay.config import ConfigError, parse_config

BASE = """\
node: {id: station, name: Station}
sites: [{id: station, name: Station}, {id: dongcun, name: Dongcun, parent: station}]
peers:
  - {id: dongcun, url: 'http://10.0.0.2:8080', token: '${DONGCUN_TOKEN}', site: dongcun}
walls:
  - {id: w, site: station, cameras: [dongcun.gate]}
"""


def test_peers_and_their_cameras_on_walls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DONGCUN_TOKEN", "a-long-enough-node-token")
    config = parse_config(BASE)
    (peer,) = config.peers
    assert (peer.url, peer.token, peer.site, peer.poll) == (
        "http://10.0.0.2:8080",
        "a-long-enough-node-token",
        "dongcun",
        10.0,
    )
    assert config.walls[0].cameras == ["dongcun.gate"]


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ("[dongcun.gate]", "<config>:6: walls[0].cameras[0]: unknown peer 'xicun'"),
        ("site: dongcun}", "<config>:4: peers[0].site: unknown site 'nowhere'"),
        ("'http://10.0.0.2:8080'", "<config>:4: peers[0].url: must be http(s)://HOST:PORT"),
    ],
)
def test_peer_mistakes_are_named(
    monkeypatch: pytest.MonkeyPatch, change: str, problem: str
) -> None:
    monkeypatch.setenv("DONGCUN_TOKEN", "a-long-enough-node-token")
    wrong = {
        "[dongcun.gate]": "[xicun.gate]",
        "site: dongcun}": "site: nowhere}",
        "'http://10.0.0.2:8080'": "'http://10.0.0.2:8080/api'",
    }[change]
    with pytest.raises(ConfigError) as error:
        parse_config(BASE.replace(change, wrong))
    assert any(p.startswith(problem) for p in error.value.problems), error.value.problems
