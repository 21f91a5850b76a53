"""The embedded run: all four services in one process on ports 8001–8004, SQLite files under
./var and the in-process bus (each service still writes through its own outbox)."""
from __future__ import annotations

import asyncio
import os
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import uvicorn
from fastapi import FastAPI

from shared.auth import demo_tokens
from shared.messaging.bus import Bus
from shared.messaging.inprocess import InProcessBus
from shared.settings import ServiceSettings


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    port: int
    create_app: Callable[..., FastAPI]
    settings_cls: type[ServiceSettings]


def service_specs() -> list[ServiceSpec]:
    from services.eligibility import app as eligibility, settings as eligibility_settings
    from services.intake import app as intake, settings as intake_settings
    from services.monitoring import app as monitoring, settings as monitoring_settings
    from services.payments import app as payments, settings as payments_settings
    return [
        ServiceSpec("intake", 8001, intake.create_app, intake_settings.Settings),
        ServiceSpec("eligibility", 8002, eligibility.create_app, eligibility_settings.Settings),
        ServiceSpec("payments", 8003, payments.create_app, payments_settings.Settings),
        ServiceSpec("monitoring", 8004, monitoring.create_app, monitoring_settings.Settings),
    ]


def build_apps(data_dir: Path, bus: Bus | None = None, **overrides: object) -> dict[str, FastAPI]:
    """One app per service sharing one in-process bus; each has its own SQLite database
    (DATABASE_URL from the environment is ignored here: four services cannot share one)."""
    bus = bus or InProcessBus()
    apps = {}
    for spec in service_specs():
        settings = spec.settings_cls(data_dir=data_dir, database_url="", event_bus="inprocess", **overrides)
        apps[spec.name] = spec.create_app(settings, bus=bus)
    return apps


async def run(host: str = "127.0.0.1", data_dir: Path = Path("var")) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    apps = build_apps(data_dir)
    servers = [uvicorn.Server(uvicorn.Config(apps[s.name], host=host, port=s.port, log_config=None,
                                             access_log=False, lifespan="on"))
               for s in service_specs()]
    for server in servers:
        server.install_signal_handlers = lambda: None  # type: ignore[method-assign]

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    tasks = [asyncio.create_task(server.serve()) for server in servers]
    while not all(server.started for server in servers):
        if any(t.done() for t in tasks):
            break
        await asyncio.sleep(0.05)
    failed = [t for t in tasks if t.done()]
    if not failed:
        _print_banner(host, apps["intake"].state.settings.auth_jwt_secret, data_dir)
        await stop.wait()
        print("\nstopping…", flush=True)
    for server in servers:
        server.should_exit = True
    await asyncio.gather(*tasks, return_exceptions=True)
    if failed:
        raise SystemExit("a service failed to start (is a port of 8001–8004 already in use?)")


def _print_banner(host: str, secret: str, data_dir: Path) -> None:
    region = os.environ.get("DEMO_REGION", "522701000000")
    lines = ["", "社会救助 platform — embedded run (SQLite in %s, in-process bus)" % data_dir.resolve(), ""]
    for s in service_specs():
        lines.append(f"  {s.name:<12} http://{host}:{s.port}   docs: http://{host}:{s.port}/docs")
    lines += ["", f"Bearer tokens (region {region}, valid 8 h; mint more: python -m shared.auth mint --role ROLE --region CODE):"]
    for role, token in demo_tokens(secret, region).items():
        lines.append(f"  {role:<26} {token}")
    lines += ["", "Ctrl-C stops everything.", ""]
    print("\n".join(lines), flush=True)


def main() -> None:
    try:
        import uvloop  # noqa: F401
        uvloop.install()
    except ImportError:
        pass
    asyncio.run(run(host=os.environ.get("HOST", "127.0.0.1"), data_dir=Path(os.environ.get("DATA_DIR", "var"))))


if __name__ == "__main__":
    main()
