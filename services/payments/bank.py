"""The bank adapter: a ``Bank`` Protocol and its HTTP implementation.

Wire contract (our side; a bank gateway adapts to it)::

    POST {BANK_URL}/payments
    Idempotency-Key: <payment id, or "<payment id>:<attempt>" for attempts after a rejection>
    {"payment_id", "attempt", "account_number", "account_name", "bank_name",
     "amount": "123.45", "currency": "CNY", "reference"}

    200/201 {"status": "accepted", "bank_ref": "…", "amount": "123.45"}   → accepted
    4xx     {"status": "rejected", "reason": "invalid_account" | "account_closed" | …} → rejected
    timeout, connection error, 5xx, anything else → unknown: send again later, SAME key

The bank must answer a repeated key with the first answer and never pay a key twice. This
adapter re-sends an unknown outcome ``retries`` times within one call (same key, same body);
the sender keeps re-sending afterwards until the bank gives a definite answer.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal, Protocol

import httpx

from shared.logging import get_logger
from shared.money import format_yuan, to_fen

log = get_logger("payments.bank")


@dataclass(frozen=True)
class BankPayment:
    payment_id: str
    attempt: int
    idempotency_key: str
    account_number: str
    account_name: str | None
    bank_name: str | None
    amount: Decimal
    reference: str


@dataclass(frozen=True)
class BankResult:
    outcome: Literal["accepted", "rejected", "unknown"]
    bank_ref: str | None = None
    reason: str | None = None
    confirmed_fen: int | None = None
    error: str | None = None


class Bank(Protocol):
    async def send(self, payment: BankPayment) -> BankResult: ...

    async def aclose(self) -> None: ...


class HttpBank:
    def __init__(self, base_url: str, *, timeout_s: float = 10.0, retries: int = 2, backoff_s: float = 0.5,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.retries = retries
        self.backoff_s = backoff_s
        self._client = httpx.AsyncClient(base_url=self.base_url, timeout=httpx.Timeout(timeout_s),
                                         transport=transport)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def send(self, payment: BankPayment) -> BankResult:
        body = {"payment_id": payment.payment_id, "attempt": payment.attempt,
                "account_number": payment.account_number, "account_name": payment.account_name,
                "bank_name": payment.bank_name, "amount": format_yuan(payment.amount), "currency": "CNY",
                "reference": payment.reference}
        headers = {"Idempotency-Key": payment.idempotency_key}
        result = BankResult("unknown", error="not sent")
        for attempt in range(self.retries + 1):
            if attempt:
                await asyncio.sleep(self.backoff_s * (2 ** (attempt - 1)))
            result = await self._once(body, headers)
            if result.outcome != "unknown":
                return result
            log.warning("bank_outcome_unknown", payment_id=payment.payment_id, key=payment.idempotency_key,
                        try_=attempt + 1, error=result.error)
        return result

    async def _once(self, body: dict[str, object], headers: dict[str, str]) -> BankResult:
        try:
            resp = await self._client.post("/payments", json=body, headers=headers)
        except httpx.TimeoutException as exc:
            return BankResult("unknown", error=f"timeout: {type(exc).__name__}")
        except httpx.TransportError as exc:
            return BankResult("unknown", error=f"transport: {type(exc).__name__}: {exc}"[:300])
        return interpret(resp.status_code, _json(resp))


def _json(resp: httpx.Response) -> dict[str, object]:
    try:
        data = resp.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def interpret(status: int, data: dict[str, object]) -> BankResult:
    """A definite answer only when the bank says so in so many words; anything else is unknown."""
    said = data.get("status")
    if 200 <= status < 300 and said == "accepted":
        confirmed = None
        if isinstance(data.get("amount"), str):
            try:
                confirmed = to_fen(Decimal(str(data["amount"])))
            except (ArithmeticError, ValueError):
                confirmed = None
        return BankResult("accepted", bank_ref=str(data.get("bank_ref") or "")[:64] or None, confirmed_fen=confirmed)
    if 400 <= status < 500 and said == "rejected" and isinstance(data.get("reason"), str):
        return BankResult("rejected", reason=str(data["reason"])[:32])
    return BankResult("unknown", error=f"HTTP {status}: {str(data)[:200]}")


class NoBank:
    """No bank configured: nothing is sent (payments wait, visibly, in ``ready``)."""

    async def send(self, payment: BankPayment) -> BankResult:  # pragma: no cover - never called
        return BankResult("unknown", error="no bank configured")

    async def aclose(self) -> None:
        return None
