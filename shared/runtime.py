"""What every service has: its database, the bus, the outbox relay, its consumers, and the
FastAPI shell with /healthz, /readyz and /metrics. Each service's app.py composes one."""
from __future__ import annotations

import asyncio
import contextlib
import gc
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any, AsyncIterator, Awaitable, Callable, Iterable

from fastapi import APIRouter, Depends, FastAPI, Query, Response
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from shared import metrics
from shared.aio import woken
from shared.calendar import default_calendar
from shared.db import make_engine, make_session_factory, ping
from shared.errors import install_problem_handlers
from shared import audit
from shared.auth import Principal, require_roles
from shared.http import RequestContextMiddleware
from shared.limits import BodySizeLimit, RateLimit
from shared.openapi import install_problem_openapi
from shared.logging import configure_logging, get_logger
from shared.messaging.bus import Bus
from shared.messaging.consumer import BatchEventHandler, EventConsumer, EventHandler, count_dead_letters
from shared.messaging.inprocess import InProcessBus
from shared.messaging.kafka import KafkaBus
from shared.messaging.relay import OutboxRelay
from shared.messaging.unit_of_work import UnitOfWork
from shared.migrations import upgrade_head_async
from shared.settings import ServiceSettings
from shared.table_maintenance import maintain_forever, server_autovacuum_is_on

log = get_logger("runtime")


AUDITORS = require_roles("county_civil_affairs", "county_finance", "monitoring_operator")


def tune_gc(gen0_threshold: int) -> None:
    """Moves what start-up built (models, routes, schemas, caches) out of the collector's sight and
    runs young-generation collections less often. Under load the collector ran every few hundred
    allocations — each parsed event is hundreds of objects — and then traversed the whole heap,
    a tenth of a service's CPU (py-spy --native, 2026-12-02)."""
    gc.collect()
    gc.freeze()
    if gen0_threshold > 0:
        _, gen1, gen2 = gc.get_threshold()
        gc.set_threshold(gen0_threshold, gen1, gen2)


def make_bus(settings: ServiceSettings) -> Bus:
    if settings.event_bus == "kafka":
        return KafkaBus(settings.kafka_bootstrap_servers, client_id=settings.service_name,
                        idempotence=settings.kafka_idempotence, partitions=settings.kafka_topic_partitions,
                        fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms,
                        max_batch_bytes=settings.kafka_max_batch_bytes,
                        session_timeout_ms=settings.kafka_session_timeout_ms)
    return InProcessBus()


class ServiceRuntime:
    def __init__(self, settings: ServiceSettings, *, service_dir: Path, bus: Bus | None = None,
                 migrate_on_start: bool = True) -> None:
        self.settings = settings
        self.name = settings.service_name
        self.service_dir = service_dir
        if settings.calendar_data_file:
            # Years the chinese-calendar package does not cover yet (published by the State Council).
            default_calendar().load_file(settings.calendar_data_file)
        self.engine = make_engine(settings)
        self.session_factory = make_session_factory(engine=self.engine)
        self.bus = bus or make_bus(settings)
        self.migrate_on_start = migrate_on_start
        self.relay = OutboxRelay(self.session_factory, self.bus, service=self.name,
                                 poll_interval=settings.outbox_poll_interval_s, batch_size=settings.outbox_batch_size,
                                 linger_s=settings.outbox_linger_ms / 1000)
        self.consumers: list[EventConsumer] = []
        # Long-running loops (scans, senders) started after the bus and cancelled at stop.
        self.background: list[Callable[[], Awaitable[None]]] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._sealer_wake = asyncio.Event()
        self.started = False

    def spawn(self, coro: Awaitable[None], name: str) -> "asyncio.Task[None]":
        """Run a long-lived loop of this service; stop() cancels it before the bus and the DB go."""
        task = asyncio.create_task(coro, name=name)  # type: ignore[arg-type]
        self._tasks.append(task)
        return task

    def uow(self) -> UnitOfWork:
        return UnitOfWork(self.session_factory, source=self.name, on_commit=self.relay.wake)

    def add_consumer(self, handlers: dict[str, EventHandler], *, group: str | None = None,
                     batch_handlers: dict[str, BatchEventHandler] | None = None) -> EventConsumer:
        """``batch_handlers``: for event types whose runs the service stores set-based (optional;
        every consumer batches its transactions anyway unless CONSUMER_BATCH=false)."""
        consumer = EventConsumer(service=self.name, group=group or self.name, session_factory=self.session_factory,
                                 handlers=handlers, bus=self.bus, max_retries=self.settings.consumer_max_retries,
                                 retry_backoff_s=self.settings.consumer_retry_backoff_s, on_commit=self.relay.wake,
                                 batch_handlers=batch_handlers, batch=self.settings.consumer_batch)
        self.consumers.append(consumer)
        return consumer

    async def start(self) -> None:
        if self.migrate_on_start:
            await upgrade_head_async(self.service_dir, self.settings.database_url)
        for consumer in self.consumers:
            consumer.register()
        await self.bus.start()
        await self.relay.start()
        for factory in self.background:
            self.spawn(factory(), getattr(factory, "__qualname__", "background"))
        if await self._maintains_tables():
            self.spawn(maintain_forever(self.engine, service=self.name,
                                        interval_s=self.settings.db_maintenance_interval_s),
                       f"table-maintenance-{self.name}")
        audit.pending_listeners.append(self._sealer_wake.set)
        self.spawn(self._seal_forever(), f"audit-sealer-{self.name}")
        if self.settings.gc_freeze_on_start:
            tune_gc(self.settings.gc_gen0_threshold)
        self.started = True
        log.info("service_started", service=self.name, bus=type(self.bus).__name__,
                 database=self.engine.url.render_as_string(hide_password=True))

    async def _maintains_tables(self) -> bool:
        mode = self.settings.db_maintenance
        if mode == "off" or self.engine.dialect.name != "postgresql":
            return False
        if mode == "on":
            return True
        if await server_autovacuum_is_on(self.engine):
            return False
        log.warning("autovacuum_off", service=self.name,
                    detail="the server's autovacuum is off: this service analyzes and vacuums its own tables")
        return True

    async def _seal_forever(self) -> None:
        """Links audit entries left pending by contended transactions (shared/audit.py): woken
        after such a commit; the interval is the safety net (another replica's commits, restarts)."""
        while True:
            try:
                await audit.seal_all(self.session_factory)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # database away for a moment: the entries wait, next round
                log.warning("audit_seal_failed", service=self.name, error=f"{type(exc).__name__}: {exc}"[:300])
            if await woken(self._sealer_wake, self.settings.audit_seal_interval_s):
                # Woken by a commit: wait a little for the commits right behind it, so that under
                # load one sealing round (five round trips) links many entries, not one each.
                await asyncio.sleep(self.settings.audit_seal_linger_ms / 1000)
            self._sealer_wake.clear()

    async def cancel_tasks(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(BaseException):
                await task
        self._tasks = []

    async def stop(self) -> None:
        with contextlib.suppress(ValueError):
            audit.pending_listeners.remove(self._sealer_wake.set)
        await self.cancel_tasks()
        await self.relay.stop()
        with contextlib.suppress(Exception):
            await self.bus.stop()
        await self.engine.dispose()
        self.started = False

    async def readiness(self) -> dict[str, Any]:
        db_ok = await ping(self.engine)
        bus_ok = await self.bus.healthy()
        return {"status": "ready" if db_ok and bus_ok else "unavailable",
                "checks": {"database": "ok" if db_ok else "unreachable", "bus": "ok" if bus_ok else "unreachable"}}

    async def refresh_metrics(self) -> None:
        with contextlib.suppress(Exception):
            await self.relay.refresh_backlog()
        for (group, topic), lag in self.bus.lag().items():
            metrics.CONSUMER_LAG.labels(self.name, group, topic).set(lag)


def create_service_app(runtime: ServiceRuntime, *, title: str, description: str,
                       routers: Iterable[APIRouter], version: str = "0.1.0",
                       public_routes: Iterable[tuple[str, str]] = ()) -> FastAPI:
    """``public_routes``: (method, path) pairs anyone may call; they get per-client rate limits."""
    configure_logging(runtime.settings.log_level, runtime.settings.log_json)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        try:
            yield
        finally:
            await runtime.stop()

    app = FastAPI(title=title, description=description, version=version, lifespan=lifespan)
    app.state.settings = runtime.settings
    app.state.runtime = runtime
    install_problem_handlers(app)
    settings = runtime.settings
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes,
                       exempt_prefixes=tuple(settings.body_limit_exempt_prefixes))
    if public_routes:
        app.add_middleware(RateLimit, routes=set(public_routes), rate=settings.public_rate_limit_per_s,
                           burst=settings.public_rate_limit_burst)
    if settings.cors_allow_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_allow_origins, allow_credentials=False,
                           allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
                           allow_headers=["Authorization", "Content-Type", "Idempotency-Key", "X-Correlation-ID"],
                           expose_headers=["X-Correlation-ID", "Retry-After"])
    app.add_middleware(RequestContextMiddleware, service=runtime.name)  # outermost: sees every answer

    ops = APIRouter(tags=["operations"])

    @ops.get("/healthz", summary="Liveness")
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "service": runtime.name}

    @ops.get("/readyz", summary="Readiness: database and bus reachable")
    async def readyz() -> JSONResponse:
        body = await runtime.readiness()
        body["service"] = runtime.name
        body["outbox_backlog"] = await runtime.relay.backlog()
        body["dead_letters_unresolved"] = await count_dead_letters(runtime.session_factory)
        return JSONResponse(body, status_code=200 if body["status"] == "ready" else 503)

    @ops.get("/metrics", summary="Prometheus metrics", include_in_schema=False)
    async def metrics_endpoint() -> Response:
        await runtime.refresh_metrics()
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @ops.get("/v1/audit/verify", summary="Verify this service's tamper-evident audit chain",
             dependencies=[Depends(AUDITORS)])
    async def audit_verify() -> dict[str, Any]:
        await audit.seal_all(runtime.session_factory)  # cover every committed entry
        async with runtime.session_factory() as session:
            report = await audit.verify(session)
        return {"service": runtime.name, **report.as_dict()}

    @ops.get("/v1/audit", summary="Audit entries of the token's region (newest first)")
    async def audit_entries(principal: Annotated[Principal, Depends(AUDITORS)], entity_type: str | None = None,
                            entity_id: str | None = None,
                            limit: int = Query(100, ge=1, le=1000)) -> dict[str, Any]:
        await audit.seal_all(runtime.session_factory)
        async with runtime.session_factory() as session:
            items = await audit.entries(session, within_region=principal.region, entity_type=entity_type,
                                        entity_id=entity_id, limit=limit)
        return {"service": runtime.name, "items": items}

    app.include_router(ops)
    for router in routers:
        app.include_router(router)
    install_problem_openapi(app)
    return app
