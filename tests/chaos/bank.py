"""The bank the fault campaign pays through: served on loopback by the harness itself, it keeps
its own record of every request and of every payment it executed, by idempotency key, and can be
told to time out, to answer 5xx, or to pay and answer only after the caller gave up."""
from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.conftest import free_port


@dataclass
class Executed:
    key: str
    payment_id: str
    attempt: int
    amount: str
    account_number: str
    reference: str
    bank_ref: str
    at: float


@dataclass
class BankRecord:
    requests: list[tuple[str, str, float]] = field(default_factory=list)  # (key, payment_id, time)
    executed: dict[str, Executed] = field(default_factory=dict)           # by idempotency key

    def executed_by_payment(self) -> dict[str, list[Executed]]:
        out: dict[str, list[Executed]] = {}
        for ex in self.executed.values():
            out.setdefault(ex.payment_id, []).append(ex)
        return out


class FakeBank:
    def __init__(self, *, slow_s: float = 2.5) -> None:
        self.record = BankRecord()
        self.slow_s = slow_s
        self.port = free_port()
        self._faults: deque[str] = deque()
        self._lock = threading.Lock()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.faults_applied: dict[str, int] = {"timeout": 0, "5xx": 0, "late": 0}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def inject(self, kind: str) -> None:
        """The next request meets this fault: ``timeout`` (no answer in time, nothing paid),
        ``5xx`` (503, nothing paid) or ``late`` (paid, answered after the caller gave up)."""
        assert kind in self.faults_applied
        with self._lock:
            self._faults.append(kind)

    async def _pay(self, request: Request) -> JSONResponse:
        key = request.headers.get("idempotency-key")
        body: dict[str, Any] = await request.json()
        if not key:
            return JSONResponse({"status": "rejected", "reason": "missing_idempotency_key"}, status_code=400)
        with self._lock:
            self.record.requests.append((key, str(body.get("payment_id")), time.time()))
            fault = self._faults.popleft() if self._faults else None
            if fault:
                self.faults_applied[fault] += 1
            done = self.record.executed.get(key)
        if done is not None:  # the same key is answered with the first answer, never paid twice
            return JSONResponse({"status": "accepted", "bank_ref": done.bank_ref, "amount": done.amount})
        if fault == "5xx":
            return JSONResponse({"error": "bank unavailable"}, status_code=503)
        if fault == "timeout":
            await asyncio.sleep(self.slow_s)
            return JSONResponse({"error": "gateway timeout"}, status_code=504)
        ex = Executed(key=key, payment_id=str(body.get("payment_id")), attempt=int(body.get("attempt") or 1),
                      amount=str(body.get("amount")), account_number=str(body.get("account_number")),
                      reference=str(body.get("reference")), bank_ref=uuid.uuid4().hex[:16], at=time.time())
        with self._lock:
            ex = self.record.executed.setdefault(key, ex)
        if fault == "late":
            await asyncio.sleep(self.slow_s)
        return JSONResponse({"status": "accepted", "bank_ref": ex.bank_ref, "amount": ex.amount})

    async def _verify(self, request: Request) -> JSONResponse:
        """The partner departments of the means test (经济状况核对): nothing above the limits."""
        await request.body()
        return JSONResponse({"assets_within_limits": True, "monthly_incomes": {},
                             "summary": f"{request.path_params['source']}: nothing found above the limits",
                             "reference": uuid.uuid4().hex[:12]})

    def start(self) -> "FakeBank":
        app = Starlette(routes=[Route("/payments", self._pay, methods=["POST"]),
                                Route("/verify/{source}", self._verify, methods=["POST"])])
        self._server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_config=None,
                                                     access_log=False, lifespan="off"))
        self._server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
        self._thread = threading.Thread(target=lambda: asyncio.run(self._server.serve()), daemon=True)
        self._thread.start()
        while not self._server.started:
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
