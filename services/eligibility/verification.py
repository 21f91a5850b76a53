"""经济状况核对: asking the partner departments, outside every database transaction.

The event consumer only marks a new case ``verifying``. This background worker (started in
the app's lifespan) claims due cases in a short transaction (``FOR UPDATE SKIP LOCKED`` on
PostgreSQL, a lease in ``next_check_at`` everywhere, so replicas share the work and a crashed
worker's claims come back), asks every configured partner concurrently over HTTP, then
stores each answer as a fact row in one short transaction per case
(``CaseService.apply_round``). A source with no configured URL is never guessed: the case
waits in ``awaiting_verification`` for a clerk's manual entry. A partner that times out or
fails is retried within the round (``PARTNER_RETRIES``) and in later rounds
(``VERIFICATION_RETRY_S``, doubling, at most ``VERIFICATION_MAX_ROUNDS``).

Partner protocol (one endpoint per source, ``PARTNER_VERIFICATION_URLS``)::

    POST <url>   Authorization: Bearer <PARTNER_VERIFICATION_TOKEN>   (when set)
    {"request_id": "<uuid>", "case_id": "…", "source": "bank_deposits",
     "region_code": "522701001000", "purpose": "低保经济状况核对",
     "persons": [{"person_id": "<身份证号>", "name": "…"}]}

    200 {"assets_within_limits": true | false | null,
         "monthly_incomes": {"<person_id>": "1200.00"},
         "summary": "what was found", "reference": "partner's reference"}
    202 — accepted, the answer will come later (pushed with POST /v1/cases/{id}/facts by a
          partner_system token); anything else is a failure.
"""
from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

import httpx
import sqlalchemy as sa

from shared.logging import get_logger
from shared.money import parse_money
from shared.runtime import ServiceRuntime

from services.eligibility.cases import CaseService, OPEN_STATUSES, utcnow
from services.eligibility.domain.means_test import required_sources
from services.eligibility.models import cases
from services.eligibility.settings import Settings

log = get_logger("eligibility.verification")


class PartnerClient:
    def __init__(self, settings: Settings, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.settings = settings
        self.urls = dict(settings.partner_verification_urls)
        headers = {"User-Agent": "jiuzhu-eligibility/1"}
        if settings.partner_verification_token:
            headers["Authorization"] = f"Bearer {settings.partner_verification_token}"
        self.client = httpx.AsyncClient(
            transport=transport or httpx.AsyncHTTPTransport(retries=1),
            timeout=httpx.Timeout(settings.partner_timeout_s), headers=headers)
        self._limit = asyncio.Semaphore(max(1, settings.partner_concurrency))

    async def close(self) -> None:
        await self.client.aclose()

    def configured(self, source: str) -> bool:
        return source in self.urls

    async def ask(self, source: str, payload: dict[str, Any]) -> dict[str, Any]:
        """``{"ok": True, ...answer}`` or ``{"ok": False, "state": "timeout"|"error"|"pending", "detail"}``."""
        url = self.urls[source]
        s = self.settings
        last: dict[str, Any] = {"ok": False, "state": "error", "detail": "not asked"}
        for attempt in range(1, s.partner_retries + 2):
            try:
                async with self._limit:
                    # wait_for bounds the whole exchange, whatever the transport does.
                    resp = await asyncio.wait_for(self.client.post(url, json=payload), timeout=s.partner_timeout_s)
            except (asyncio.TimeoutError, httpx.TimeoutException):
                last = {"ok": False, "state": "timeout", "attempts": attempt,
                        "detail": f"no answer within {s.partner_timeout_s:g} s (attempt {attempt})"}
            except httpx.HTTPError as exc:
                last = {"ok": False, "state": "error", "attempts": attempt,
                        "detail": f"{type(exc).__name__}: {str(exc)[:200]}"}
            else:
                if resp.status_code == 200:
                    return {**self._parse(source, resp), "attempts": attempt}
                if resp.status_code == 202:
                    return {"ok": False, "state": "pending", "attempts": attempt,
                            "detail": "the partner accepted the request; its answer will be pushed later"}
                last = {"ok": False, "state": "error", "attempts": attempt,
                        "detail": f"HTTP {resp.status_code}: {resp.text[:200]}"}
                if resp.status_code < 500 and resp.status_code != 429:
                    return last  # a client error does not heal by retrying
            if attempt <= s.partner_retries:
                await asyncio.sleep(s.partner_retry_backoff_s * 2 ** (attempt - 1))
        return last

    @staticmethod
    def _parse(source: str, resp: httpx.Response) -> dict[str, Any]:
        try:
            body = resp.json()
            if not isinstance(body, dict):
                raise ValueError("the answer must be a JSON object")
            assets = body.get("assets_within_limits")
            if assets is not None and not isinstance(assets, bool):
                raise ValueError("assets_within_limits must be true, false or null")
            raw = body.get("monthly_incomes") or {}
            if not isinstance(raw, dict):
                raise ValueError("monthly_incomes must be an object")
            incomes = {str(k): parse_money(v, field=f"monthly_incomes.{k}") for k, v in raw.items()}
            summary = body.get("summary")
            reference = body.get("reference")
        except Exception as exc:  # noqa: BLE001 - any malformed answer is one failure, stated
            return {"ok": False, "state": "error", "detail": f"invalid answer: {str(exc)[:200]}"}
        return {"ok": True, "source": source, "assets_within_limits": assets, "monthly_incomes": incomes,
                "summary": str(summary)[:2000] if summary is not None else None,
                "reference": str(reference)[:200] if reference is not None else None}


class VerificationWorker:
    def __init__(self, runtime: ServiceRuntime, settings: Settings, case_service: CaseService,
                 client: PartnerClient) -> None:
        self.runtime = runtime
        self.settings = settings
        self.cases = case_service
        self.client = client

    def _lease(self) -> timedelta:
        s = self.settings
        per_call = s.partner_timeout_s * (s.partner_retries + 1) + s.partner_retry_backoff_s * 2 ** (s.partner_retries + 1)
        return timedelta(seconds=per_call * 2 + 30)

    async def _claim(self) -> list[dict[str, Any]]:
        now = utcnow()
        pick = (sa.select(cases.c.id).where(cases.c.status.in_(OPEN_STATUSES), cases.c.next_check_at.is_not(None),
                                            cases.c.next_check_at <= now)
                .order_by(cases.c.next_check_at).limit(self.settings.verification_batch_size))
        if self.runtime.engine.dialect.name == "postgresql":
            pick = pick.with_for_update(skip_locked=True)
        stmt = (sa.update(cases).where(cases.c.id.in_(pick.scalar_subquery()))
                .values(next_check_at=now + self._lease())
                .returning(cases.c.id, cases.c.program, cases.c.region_code, cases.c.household,
                           cases.c.pending_sources))
        async with self.runtime.session_factory() as s:
            async with s.begin():
                rows = (await s.execute(stmt)).mappings().all()
        return [dict(r) for r in rows]

    async def _verify(self, row: dict[str, Any]) -> None:
        pending = row["pending_sources"]
        if pending is None:
            pending = list(required_sources(row["program"]))
        to_call = [s for s in pending if self.client.configured(s)]
        not_configured = [s for s in pending if not self.client.configured(s)]
        # the partners are asked by number: from the vault, in memory only
        async with self.runtime.session_factory() as s:
            numbers = await self.cases.persons.reveal(s, [m["person_id"] for m in row["household"]["members"]])
        persons = [{"person_id": numbers.get(m["person_id"], m["person_id"]), "name": m.get("name")}
                   for m in row["household"]["members"]]
        results = await asyncio.gather(*[
            self.client.ask(source, {"request_id": str(uuid.uuid4()), "case_id": row["id"], "source": source,
                                     "region_code": row["region_code"], "purpose": "低保经济状况核对",
                                     "persons": persons})
            for source in to_call])
        answers = [r for r in results if r.get("ok")]
        failures = {source: r for source, r in zip(to_call, results) if not r.get("ok")}
        status = await self.cases.apply_round(row["id"], answers, failures, not_configured)
        log.info("verification_round", case_id=row["id"], status=status, answered=len(answers),
                 failed=sorted(failures), not_configured=not_configured)

    async def run_once(self) -> int:
        rows = await self._claim()
        if rows:
            done = await asyncio.gather(*[self._verify(r) for r in rows], return_exceptions=True)
            for r, d in zip(rows, done):
                if isinstance(d, BaseException):
                    log.error("verification_failed", case_id=r["id"], error=f"{type(d).__name__}: {d}"[:300])
        return len(rows)
