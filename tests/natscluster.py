"""Three real nats-servers in one JetStream cluster, routes on 127.0.0.1."""

from __future__ import annotations

import subprocess
import time
import urllib.request
from pathlib import Path

from tests.helpers import free_port
from tests.natsserver import nats_server_binary


class ClusterServer:
    def __init__(self, name: str, store_dir: Path, routes: list[str]) -> None:
        self.name = name
        self.store_dir = store_dir
        self.port, self.route_port, self.monitor_port = free_port(), free_port(), free_port()
        self.url = f"nats://127.0.0.1:{self.port}"
        self.routes = routes
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def route(self) -> str:
        return f"nats://127.0.0.1:{self.route_port}"

    def start(self, routes: list[str]) -> None:
        self.process = subprocess.Popen(
            [
                nats_server_binary(),
                *("-a", "127.0.0.1", "-p", str(self.port), "-m", str(self.monitor_port)),
                *("-n", self.name, "--cluster_name", "villagewatch"),
                *("-cluster", self.route, "-routes", ",".join(routes)),
                *("-js", "-sd", str(self.store_dir)),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def healthy(self) -> bool:
        url = f"http://127.0.0.1:{self.monitor_port}/healthz"
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def kill(self) -> None:
        """kill -9: no goodbye to the cluster or the clients."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(10)
            self.process = None


class NatsCluster:
    def __init__(self, store_dir: Path) -> None:
        self.servers = [ClusterServer(f"n{i}", store_dir / f"n{i}", []) for i in range(3)]

    @property
    def urls(self) -> list[str]:
        return [s.url for s in self.servers]

    def start(self, server: ClusterServer | None = None, timeout: float = 30.0) -> None:
        chosen = [server] if server else self.servers
        for s in chosen:
            s.start([o.route for o in self.servers if o is not s])
        deadline = time.monotonic() + timeout
        while not all(s.healthy() for s in self.servers if s.process is not None):
            if time.monotonic() > deadline:
                raise RuntimeError("the NATS cluster did not become healthy")
            time.sleep(0.2)

    def __enter__(self) -> NatsCluster:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        for server in self.servers:
            server.kill()
