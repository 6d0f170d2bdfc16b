"""Nodes for the access tests: users of every role and the config around them."""

from __future__ import annotations

from relay.access.passwords import hash_token
from tests.conftest import PASSWORD_HASH, users_yaml

# A patrol team's phone (its role needs a team, which users_yaml cannot give).
PATROL = (
    "  - {name: patrol, role: patrol, sites: [station], team: t1,"
    f" password_hash: '{PASSWORD_HASH}', token_hash: '{hash_token('patrol-token')}'}}\n"
)

USERS = (
    ("officer", "officer", "station"),
    ("operator", "operator", "east"),
    ("watcher", "viewer", "east"),
    ("peer", "node", "east"),
    ("outsider", "operator", "west"),
)


def config_text(users: tuple[tuple[str, str, str], ...] = USERS) -> str:
    return (
        "node: {id: t, name: T}\n"
        "sites:\n"
        "  - {id: station, name: Station}\n"
        "  - {id: east, name: East, parent: station}\n"
        "  - {id: west, name: West, parent: station}\n"
        "webrtc: {host_addresses: [127.0.0.1]}\n"
        "cameras:\n"
        "  - {id: e1, name: E1, site: east, main: 'synthetic://160x120?fps=5'}\n"
        "  - {id: w1, name: W1, site: west, main: 'synthetic://160x120?fps=5'}\n"
        "walls:\n"
        "  - {id: ew, site: east, cameras: [e1]}\n"
        "patrol_teams:\n  - {id: t1, name: T1, site: station}\n" + users_yaml(*users) + PATROL
    )
