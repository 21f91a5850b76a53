"""The embedded system served by real uvicorn servers on free loopback ports, in a background
thread — what outside clients (and schemathesis) talk to."""
from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import uvicorn

from services.embedded import build_apps
from tests.conftest import free_port


class LiveSystem:
    def __init__(self, data_dir: Path, **overrides: Any) -> None:
        self.data_dir = data_dir
        self.overrides = overrides
        self.apps: dict[str, Any] = {}
        self.ports: dict[str, int] = {}
        self._servers: list[uvicorn.Server] = []
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    def start(self) -> "LiveSystem":
        self.apps = build_apps(self.data_dir, **self.overrides)
        self.ports = {name: free_port() for name in self.apps}
        self._servers = [uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.ports[name], log_config=None,
                                                       access_log=False, lifespan="on"))
                         for name, app in self.apps.items()]
        for s in self._servers:
            s.install_signal_handlers = lambda: None  # type: ignore[method-assign]

        def run() -> None:
            try:
                asyncio.run(self._serve())
            except BaseException as exc:  # surfaced by start()
                self._error = exc

        self._thread = threading.Thread(target=run, name="live-system", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 60
        while not all(s.started for s in self._servers):
            if self._error or time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError(f"live system did not start: {self._error!r}")
            time.sleep(0.05)
        return self

    async def _serve(self) -> None:
        await asyncio.gather(*(s.serve() for s in self._servers))

    def stop(self) -> None:
        for s in self._servers:
            s.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=30)
