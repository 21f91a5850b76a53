"""The four services as separate processes (`python -m services.<name>`) over a Kafka-protocol
broker and PostgreSQL — shared by the e2e tests and the fault campaign."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import httpx

from shared.auth import mint_token
from tests.conftest import TEST_SESSION_TIMEOUT_MS, Broker, free_port

SERVICES = ("intake", "eligibility", "payments", "monitoring")
SECRET = "cluster-secret-0123456789-0123456789-0123456789"
DATA_KEY = "cluster-data-key-0123456789-0123456789-0123456"


class Cluster:
    def __init__(self, broker: Broker, db_urls: dict[str, str], log_dir: Path,
                 extra_env: dict[str, dict[str, str]] | None = None) -> None:
        self.broker = broker
        self.db_urls = db_urls
        self.log_dir = log_dir
        self.extra_env = extra_env or {}
        self.ports = {name: free_port() for name in SERVICES}
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.restarts: dict[str, int] = {name: 0 for name in SERVICES}

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    def env(self, name: str) -> dict[str, str]:
        return {**os.environ, "DATABASE_URL": self.db_urls[name], "EVENT_BUS": "kafka",
                "KAFKA_BOOTSTRAP_SERVERS": self.broker.bootstrap, "KAFKA_IDEMPOTENCE": "false",
                "AUTH_JWT_SECRET": SECRET, "DATA_ENCRYPTION_KEY": DATA_KEY, "PORT": str(self.ports[name]),
                "HOST": "127.0.0.1", "ENVIRONMENT": "test", "LOG_LEVEL": "WARNING",
                "OUTBOX_POLL_INTERVAL_S": "0.2", "KAFKA_SESSION_TIMEOUT_MS": str(TEST_SESSION_TIMEOUT_MS),
                **self.extra_env.get(name, {})}

    def start(self, name: str, timeout: float = 60.0) -> None:
        self._spawn(name)
        self._wait_healthy(name, timeout)

    def _spawn(self, name: str) -> None:
        log = open(self.log_dir / f"{name}.log", "ab")
        self.procs[name] = subprocess.Popen([sys.executable, "-m", f"services.{name}"], env=self.env(name),
                                            stdout=log, stderr=subprocess.STDOUT)

    def _wait_healthy(self, name: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url(name) + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.procs[name].poll() is not None:
                break
            time.sleep(0.1)
        raise RuntimeError(f"{name} did not start:\n" + (self.log_dir / f"{name}.log").read_text()[-3000:])

    def start_all(self, timeout: float = 90.0) -> None:
        """All four at once: their imports and migrations overlap (one after another took ~12 s)."""
        for name in SERVICES:
            self._spawn(name)
        for name in SERVICES:
            self._wait_healthy(name, timeout)

    def kill9(self, name: str) -> None:
        proc = self.procs.pop(name, None)
        if proc is not None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()

    def restart(self, name: str, *, hard: bool = True) -> None:
        if hard:
            self.kill9(name)
        else:
            self.terminate(name)
        self.restarts[name] += 1
        self.start(name)

    def terminate(self, name: str) -> None:
        proc = self.procs.pop(name, None)
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def stop_all(self) -> None:
        for name in list(self.procs):
            self.terminate(name)

    def logs(self, tail: int = 2000) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-tail:]}" for p in sorted(self.log_dir.glob("*.log")))


def headers(role: str, region: str = "522701000000", sub: str | None = None) -> dict[str, str]:
    return {"Authorization": "Bearer " + mint_token(secret=SECRET, sub=sub or f"{role}-cluster", role=role,
                                                      region=region, name="cluster")}


def wait_for(fn: Callable[[], Any], timeout: float = 60.0, what: str = "condition", interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = fn()
            if last:
                return last
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(interval)
    raise AssertionError(f"{what} not reached in {timeout}s (last: {last!r})")
