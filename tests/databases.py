"""Fresh test databases, cheaply: each service's schema migrated once per session and copied, and
PostgreSQL databases created ahead of the tests that need them.

Most of the suite's time went into making databases: replaying a service's alembic migrations
costs 0.3–1.2 s, and PostgreSQL's ``CREATE DATABASE`` 0.15 s (a WAL-logged copy of template1),
for each of hundreds of tests, while the test process itself sat mostly idle.

- ``SchemaTemplates`` stands in for ``shared.migrations.upgrade_head`` during the tests. The first
  time a service is migrated on a dialect, its real migrations build a template (a SQLite file, a
  PostgreSQL database); after that a database that is still *fresh and empty* becomes a copy of
  it (a file copy; a clone of the template). Anything else — a database holding tables, a
  migration test stepping through revisions, a database something is connected to — is migrated
  for real, so what a test sees never differs from ``upgrade_head``; the service processes of the
  e2e and chaos tests run their own migrations.
- ``ReadyDatabases`` keeps a few empty databases, and a few clones of each template, created on a
  thread of its own while the tests run; taking one is a rename (1 ms).
"""
from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import threading
import uuid
from pathlib import Path
from typing import Any, Awaitable, Callable, TypeVar

import asyncpg
from sqlalchemy.engine import make_url

T = TypeVar("T")


def run_sync(coro_fn: Callable[[], Awaitable[T]]) -> T:
    """``asyncio.run(coro_fn())``, also from a thread whose loop is running (then on a new thread)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro_fn())  # type: ignore[arg-type]
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(coro_fn())  # type: ignore[arg-type]
        except BaseException as exc:  # handed back to the caller
            box["error"] = exc

    t = threading.Thread(target=target)
    t.start()
    t.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


async def admin_exec(admin_dsn: str, *statements: str) -> None:
    conn = await asyncpg.connect(admin_dsn, timeout=10)
    try:
        for sql in statements:
            await conn.execute(sql)
    finally:
        await conn.close()


def drop_databases(admin_dsn: str, names: list[str]) -> None:
    """Best effort, at the end of the session: a database left behind only costs disk space."""
    if not names:
        return
    try:
        run_sync(lambda: admin_exec(admin_dsn, *(f'DROP DATABASE IF EXISTS "{n}" WITH (FORCE)' for n in names)))
    except Exception:
        pass


class ReadyDatabases:
    """Databases created ahead: ``depth`` empty ones and ``depth`` clones of each wanted template."""

    def __init__(self, admin_dsn: str, depth: int = 2) -> None:
        self.admin_dsn = admin_dsn
        self.depth = depth
        self.prefix = f"t_ready_{os.getpid()}_"
        self._ready: dict[str | None, list[str]] = {None: []}  # template (None: empty) → names
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=lambda: asyncio.run(self._fill()), name="ready-databases",
                                            daemon=True)
            self._thread.start()

    def want(self, template: str) -> None:
        with self._lock:
            self._ready.setdefault(template, [])

    def take(self, new_name: str, template: str | None = None) -> bool:
        """Renames a ready database (empty, or a clone of ``template``) to ``new_name``; False
        when none is ready (the caller creates it the slow way)."""
        with self._lock:
            names = self._ready.get(template) or []
            name = names.pop(0) if names else None
        if name is None:
            return False
        run_sync(lambda: admin_exec(self.admin_dsn, f'ALTER DATABASE "{name}" RENAME TO "{new_name}"'))
        return True

    async def _fill(self) -> None:
        conn: asyncpg.Connection | None = None
        try:
            while not self._stopping.is_set():
                with self._lock:
                    short = next((t for t, names in self._ready.items() if len(names) < self.depth), "-")
                if short == "-":
                    await asyncio.sleep(0.05)
                    continue
                name = f"{self.prefix}{uuid.uuid4().hex[:10]}"
                try:
                    if conn is None or conn.is_closed():
                        conn = await asyncpg.connect(self.admin_dsn, timeout=10)
                    await conn.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{short}"' if short else ""))
                except (OSError, asyncpg.PostgresError):
                    await asyncio.sleep(0.5)  # the tests then create their own, and report any failure
                    continue
                with self._lock:
                    self._ready[short].append(name)
        finally:
            if conn is not None:
                await conn.close()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        with self._lock:
            names = [n for ready in self._ready.values() for n in ready]
            for ready in self._ready.values():
                ready.clear()
        drop_databases(self.admin_dsn, names)


class SchemaTemplates:
    def __init__(self, real_upgrade: Callable[[Path, str], None], admin_dsn: str,
                 ready: ReadyDatabases | None = None) -> None:
        self.real_upgrade = real_upgrade
        self.admin_dsn = admin_dsn
        self.ready = ready
        self.enabled = True
        self._lock = threading.Lock()
        self._dir = Path(tempfile.mkdtemp(prefix="schema-templates-"))
        self._sqlite: dict[Path, Path] = {}
        self._pg: dict[Path, str] = {}
        self.copies = 0  # databases made from a template (a test checks the hook is in use)

    def __call__(self, service_dir: Path, database_url: str) -> None:
        service_dir = Path(service_dir).resolve()
        url = make_url(database_url)
        with self._lock:
            backend = url.get_backend_name()
            if backend == "sqlite" and self._sqlite_copy(service_dir, url.database, database_url):
                return
            if backend == "postgresql" and url.database and self._pg_copy(service_dir, url.database, database_url):
                return
        self.real_upgrade(service_dir, database_url)

    # -- SQLite -----------------------------------------------------------------------------------
    def _sqlite_copy(self, service_dir: Path, path: str | None, database_url: str) -> bool:
        if not path or path == ":memory:" or (os.path.exists(path) and os.path.getsize(path) > 0):
            return False
        template = self._sqlite.get(service_dir)
        if template is None:
            template = self._dir / f"{service_dir.name}-{uuid.uuid4().hex[:8]}.db"
            self.real_upgrade(service_dir, make_url(database_url).set(database=str(template))
                              .render_as_string(hide_password=False))
            self._sqlite[service_dir] = template
        shutil.copyfile(template, path)
        self.copies += 1
        return True

    # -- PostgreSQL -------------------------------------------------------------------------------
    def _pg_copy(self, service_dir: Path, name: str, database_url: str) -> bool:
        base = self.admin_dsn.rsplit("/", 1)[0]

        async def is_fresh() -> bool:
            conn = await asyncpg.connect(f"{base}/{name}", timeout=10)
            try:
                tables = await conn.fetchval("SELECT count(*) FROM pg_class c JOIN pg_namespace n "
                                             "ON n.oid = c.relnamespace WHERE n.nspname = 'public'")
            finally:
                await conn.close()
            return tables == 0

        if not run_sync(is_fresh):
            return False
        template = self._pg.get(service_dir)
        if template is None:
            template = f"t_tmpl_{os.getpid()}_{service_dir.name}_{uuid.uuid4().hex[:6]}"
            run_sync(lambda: admin_exec(self.admin_dsn, f'CREATE DATABASE "{template}"'))
            self.real_upgrade(service_dir, make_url(database_url).set(database=template)
                              .render_as_string(hide_password=False))
            self._pg[service_dir] = template
            if self.ready is not None:
                self.ready.want(template)

        async def drop_fresh() -> bool:
            try:  # no FORCE: a database someone is connected to is left alone (migrated for real)
                await admin_exec(self.admin_dsn, f'DROP DATABASE "{name}"')
            except asyncpg.PostgresError:
                return False
            return True

        if not run_sync(drop_fresh):
            return False
        if self.ready is None or not self.ready.take(name, template):
            run_sync(lambda: admin_exec(self.admin_dsn, f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
        self.copies += 1
        return True

    def drop(self) -> None:
        drop_databases(self.admin_dsn, list(self._pg.values()))
        self._pg.clear()
        shutil.rmtree(self._dir, ignore_errors=True)
