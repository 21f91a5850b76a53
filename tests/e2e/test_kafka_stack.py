"""The four services as separate processes over the Kafka-protocol broker and PostgreSQL:
the foundation flow, the broker down for a while, and a crash between commit and publish."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import httpx
import pytest

from tests.conftest import Broker, free_port
from tests.support import COUNTY, application_body, auth

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

SERVICES = ("intake", "eligibility", "payments", "monitoring")
SECRET = "e2e-secret-0123456789-0123456789-0123456789"


class Stack:
    def __init__(self, broker: Broker, urls: dict[str, str], log_dir: Path) -> None:
        self.broker = broker
        self.db_urls = urls
        self.log_dir = log_dir
        self.ports = {name: free_port() for name in SERVICES}
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    def start(self, name: str) -> None:
        env = {**os.environ, "DATABASE_URL": self.db_urls[name], "EVENT_BUS": "kafka",
               "KAFKA_BOOTSTRAP_SERVERS": self.broker.bootstrap, "KAFKA_IDEMPOTENCE": "false",
               "AUTH_JWT_SECRET": SECRET, "PORT": str(self.ports[name]), "HOST": "127.0.0.1",
               "ENVIRONMENT": "test", "LOG_LEVEL": "WARNING", "OUTBOX_POLL_INTERVAL_S": "0.2"}
        log = open(self.log_dir / f"{name}.log", "ab")
        self.procs[name] = subprocess.Popen([sys.executable, "-m", f"services.{name}"], env=env,
                                            stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url(name) + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.procs[name].poll() is not None:
                break
            time.sleep(0.2)
        raise RuntimeError(f"{name} did not start:\n" + (self.log_dir / f"{name}.log").read_text()[-3000:])

    def kill9(self, name: str) -> None:
        proc = self.procs.pop(name)
        proc.send_signal(signal.SIGKILL)
        proc.wait()

    def stop_all(self) -> None:
        for proc in self.procs.values():
            proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.procs.clear()

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text()[-2000:]}" for p in self.log_dir.glob("*.log"))


def tok(role: str, region: str = COUNTY) -> dict[str, str]:
    from shared.auth import mint_token
    return {"Authorization": "Bearer " + mint_token(secret=SECRET, sub=f"{role}-e2e", role=role, region=region,
                                                      name="e2e")}


@pytest.fixture
def stack(kafka_broker: Broker, pg_databases, tmp_path: Path) -> Iterator[Stack]:
    urls = {name: pg_databases.new(name) for name in SERVICES}
    s = Stack(kafka_broker, urls, tmp_path)
    try:
        for name in SERVICES:
            s.start(name)
        yield s
    finally:
        s.stop_all()


def wait_for(fn, timeout: float = 60.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = fn()
            if last:
                return last
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(0.2)
    raise AssertionError(f"{what} not reached in {timeout}s (last: {last!r})")


CHANNEL_ROLE = {"window": "township_clerk", "hotline_12345": "hotline_operator",
                "active_discovery": "village_coordinator"}


def post_application(s: Stack, seq: int, channel: str = "window") -> dict:
    r = httpx.post(s.url("intake") + "/v1/applications", json=application_body(seq=seq, channel=channel),
                   headers={**tok(CHANNEL_ROLE[channel]), "Idempotency-Key": f"e2e-{seq}"}, timeout=10)
    assert r.status_code == 201, r.text
    return r.json()


def case_of(s: Stack, app_id: str) -> str | None:
    r = httpx.get(s.url("intake") + f"/v1/applications/{app_id}", headers=tok("township_clerk"), timeout=5)
    return r.json()["case_id"]


def new_cases(s: Stack) -> dict:
    r = httpx.get(s.url("monitoring") + "/v1/indicators/new-cases", params={"region_code": COUNTY},
                  headers=tok("monitoring_operator"), timeout=5)
    return r.json()["by_channel"]


def test_four_services_over_kafka_survive_broker_outage_and_crash(stack: Stack) -> None:
    s = stack
    try:
        # 1. The foundation flow: intake → eligibility → payments + monitoring.
        app = post_application(s, 1)
        case_id = wait_for(lambda: case_of(s, app["application_id"]), what="case opened")
        r = httpx.get(s.url("eligibility") + f"/v1/cases/{case_id}", headers=tok("township_clerk"))
        assert r.status_code == 200 and r.json()["application_id"] == app["application_id"]
        wait_for(lambda: httpx.get(s.url("payments") + f"/v1/cases/{case_id}/payment-deadline",
                                   headers=tok("township_clerk")).status_code == 200, what="payments clock")
        wait_for(lambda: new_cases(s)["window"] == 1, what="monitoring count")

        # 2. Broker down: intake keeps accepting; the outbox holds the events.
        s.broker.stop()
        during = [post_application(s, 10 + i, channel="hotline_12345") for i in range(3)]
        ready = httpx.get(s.url("intake") + "/readyz", timeout=10)
        assert ready.status_code == 503 and ready.json()["outbox_backlog"] >= 3

        # 3. Crash after the commit and before the publish: kill -9 intake with events pending.
        crashed = post_application(s, 20, channel="active_discovery")
        s.kill9("intake")

        s.broker.start()
        s.start("intake")
        for a in during + [crashed]:
            wait_for(lambda a=a: case_of(s, a["application_id"]), timeout=90, what=f"case for {a['application_id']}")
        wait_for(lambda: new_cases(s) == {"hotline_12345": 3, "e_jiuzhu": 0, "window": 1, "active_discovery": 1},
                 timeout=90, what="monitoring caught up")
        for name in SERVICES:
            body = wait_for(lambda name=name: (lambda r: r.json() if r.json()["outbox_backlog"] == 0
                                               and r.status_code == 200 else None)(
                httpx.get(s.url(name) + "/readyz", timeout=10)), timeout=60, what=f"{name} outbox drained")
            assert body["dead_letters_unresolved"] == 0
    except Exception:
        print(s.logs())
        raise
