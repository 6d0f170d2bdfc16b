"""Nodes for the access tests: users of every role and the config around them."""

from __future__ import annotations

from tests.conftest import users_yaml

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
        "  - {id: ew, site: east, cameras: [e1]}\n" + users_yaml(*users)
    )
