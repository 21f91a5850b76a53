"""反馈 to the channel (I2): the 12345 platform hears the outcome of each work order.

A feedback row is written in the same transaction as the state change that causes it (an
outbox for callbacks), so no outcome is lost to a crash or an unreachable platform. The
:class:`FeedbackSender` background task posts ``{work_order, outcome, text}`` to
``HOTLINE_CALLBACK_URL`` with a timeout and connection retries; a failed row is kept as
``failed`` with its error and retried with exponential backoff, visible to operators
(``GET /v1/channel-feedback?state=failed``) and in the ``intake_channel_feedback`` gauge.
"""
from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

import httpx
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession

from shared.aio import woken
from shared.auth import Principal, region_prefix
from shared.errors import Conflict, NotFound
from shared.logging import get_logger
from shared.runtime import ServiceRuntime

from services.intake import metrics
from services.intake.models import channel_feedback
from services.intake.schemas import ChannelFeedbackOut
from services.intake.settings import Settings

log = get_logger("intake.feedback")

# 4xx answers that will not change by retrying: the row waits for an operator.
_PERMANENT = frozenset({400, 401, 403, 404, 405, 410, 422})


def _now() -> datetime:
    return datetime.now(timezone.utc)


INSERT_FEEDBACK = channel_feedback.insert()


def feedback_row(*, channel: str, work_order: str, region_code: str, outcome: str, text: str, now: datetime,
                 application_id: str | None = None, hotline_call_id: str | None = None) -> dict[str, Any]:
    """A new feedback row, due now (for callers that store several at once)."""
    return {"application_id": application_id, "hotline_call_id": hotline_call_id, "channel": channel,
            "work_order": work_order, "region_code": region_code, "outcome": outcome, "text": text,
            "state": "pending", "attempts": 0, "next_attempt_at": now, "created_at": now, "updated_at": now}


async def enqueue(session: AsyncSession, *, channel: str, work_order: str, region_code: str, outcome: str,
                  text: str, now: datetime, application_id: str | None = None,
                  hotline_call_id: str | None = None) -> None:
    """Add a feedback row inside the caller's transaction."""
    await session.execute(INSERT_FEEDBACK, feedback_row(
        channel=channel, work_order=work_order, region_code=region_code, outcome=outcome, text=text, now=now,
        application_id=application_id, hotline_call_id=hotline_call_id))


def backoff_seconds(attempts: int, base: float, cap: float) -> float:
    """Exponential: base, 2·base, 4·base … capped."""
    return min(cap, base * (2 ** max(0, attempts - 1)))


class FeedbackSender:
    def __init__(self, runtime: ServiceRuntime, settings: Settings,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.runtime = runtime
        self.settings = settings
        self.transport = transport
        self.clock: Callable[[], datetime] = _now
        self._client: httpx.AsyncClient | None = None
        self._wake = asyncio.Event()

    @property
    def url(self) -> str | None:
        return str(self.settings.hotline_callback_url) if self.settings.hotline_callback_url else None

    # -- lifecycle -------------------------------------------------------------------------
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            transport = self.transport or httpx.AsyncHTTPTransport(
                retries=self.settings.hotline_callback_connect_retries)
            self._client = httpx.AsyncClient(transport=transport,
                                             timeout=httpx.Timeout(self.settings.hotline_callback_timeout_s))
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            with contextlib.suppress(Exception):
                await self._client.aclose()
            self._client = None

    def wake(self) -> None:
        self._wake.set()

    def wake_after_commit(self, session: AsyncSession) -> None:
        """Wake the sender once ``session``'s transaction has committed (consumer paths)."""
        loop = asyncio.get_running_loop()

        def _after_commit(_: Any) -> None:
            loop.call_soon_threadsafe(self._wake.set)

        event.listen(session.sync_session, "after_commit", _after_commit, once=True)

    async def run(self) -> None:
        """Background task: deliver due rows; sleep until woken or the poll interval passes."""
        while True:
            try:
                await self.deliver_due()
                await self.refresh_gauge()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database may be down for a moment: try again later
                log.warning("feedback_loop_failed", error=str(exc)[:300])
            self._wake.clear()
            await woken(self._wake, self.settings.feedback_poll_interval_s)

    # -- delivery --------------------------------------------------------------------------
    async def deliver_due(self) -> int:
        """Claim due rows (SKIP LOCKED on PostgreSQL, a lease on the row), post each, record the result."""
        url = self.url
        if url is None:
            return 0
        now = self.clock()
        lease = now + timedelta(seconds=self.settings.hotline_callback_timeout_s
                                * (self.settings.hotline_callback_connect_retries + 1) + 30)
        async with self.runtime.session_factory() as s, s.begin():
            q = (sa.select(channel_feedback.c.id, channel_feedback.c.work_order, channel_feedback.c.outcome,
                           channel_feedback.c.text, channel_feedback.c.attempts)
                 .where(channel_feedback.c.state.in_(("pending", "failed")),
                        channel_feedback.c.next_attempt_at <= now)
                 .order_by(channel_feedback.c.next_attempt_at).limit(self.settings.feedback_batch_size))
            if s.bind.dialect.name == "postgresql":
                q = q.with_for_update(skip_locked=True)
            rows = (await s.execute(q)).all()
            if rows:
                await s.execute(channel_feedback.update().where(channel_feedback.c.id.in_([r.id for r in rows]))
                                .values(next_attempt_at=lease))
        for r in rows:
            await self._deliver(url, r)
        return len(rows)

    async def _deliver(self, url: str, row: Any) -> None:
        error: str | None = None
        permanent = False
        try:
            resp = await self.client().post(
                url, json={"work_order": row.work_order, "outcome": row.outcome, "text": row.text},
                headers={"Idempotency-Key": f"intake-feedback-{row.id}"})
            if resp.status_code >= 300:
                error = f"HTTP {resp.status_code}: {resp.text[:200]}"
                permanent = resp.status_code in _PERMANENT
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"[:500]
        now = self.clock()
        attempts = row.attempts + 1
        if error is None:
            values: dict[str, Any] = {"state": "sent", "sent_at": now, "last_error": None, "next_attempt_at": None}
            metrics.CHANNEL_FEEDBACK_ATTEMPTS.labels("ok").inc()
        else:
            give_up = permanent or attempts >= self.settings.feedback_max_attempts
            retry_at = None if give_up else now + timedelta(seconds=backoff_seconds(
                attempts, self.settings.feedback_retry_base_s, self.settings.feedback_retry_max_s))
            values = {"state": "failed", "last_error": error, "next_attempt_at": retry_at}
            metrics.CHANNEL_FEEDBACK_ATTEMPTS.labels("failed").inc()
            log.warning("channel_feedback_failed", feedback_id=row.id, attempts=attempts, error=error[:200],
                        retry_at=retry_at.isoformat() if retry_at else None)
        async with self.runtime.session_factory() as s, s.begin():
            await s.execute(channel_feedback.update().where(channel_feedback.c.id == row.id)
                            .values(attempts=attempts, updated_at=now, **values))

    async def refresh_gauge(self) -> dict[str, int]:
        async with self.runtime.session_factory() as s:
            counts = dict((await s.execute(
                sa.select(channel_feedback.c.state, sa.func.count()).where(channel_feedback.c.state != "sent")
                .group_by(channel_feedback.c.state))).all())
        out = {state: int(counts.get(state, 0)) for state in ("pending", "failed")}
        for state, n in out.items():
            metrics.CHANNEL_FEEDBACK.labels(state).set(n)
        return out

    # -- operators ---------------------------------------------------------------------------
    async def list(self, principal: Principal, state: str | None, limit: int) -> list[ChannelFeedbackOut]:
        q = sa.select(channel_feedback).where(
            channel_feedback.c.region_code.like(region_prefix(principal.region) + "%"))
        if state is not None:
            q = q.where(channel_feedback.c.state == state)
        q = q.order_by(channel_feedback.c.id.desc()).limit(limit)
        async with self.runtime.session_factory() as s:
            rows = (await s.execute(q)).mappings().all()
        return [_out(r) for r in rows]

    async def retry(self, feedback_id: int, principal: Principal) -> ChannelFeedbackOut:
        """An operator asks for another attempt now (also after automatic retries gave up)."""
        now = self.clock()
        async with self.runtime.session_factory() as s, s.begin():
            row = (await s.execute(sa.select(channel_feedback).where(channel_feedback.c.id == feedback_id)
                                   .with_for_update())).mappings().first()
            if row is None or not principal.covers(row["region_code"]):
                raise NotFound(f"channel feedback {feedback_id} not found")
            if row["state"] == "sent":
                raise Conflict(f"channel feedback {feedback_id} was already delivered")
            await s.execute(channel_feedback.update().where(channel_feedback.c.id == feedback_id)
                            .values(next_attempt_at=now, updated_at=now))
            row = {**row, "next_attempt_at": now}
        self.wake()
        return _out(row)


def _out(r: Any) -> ChannelFeedbackOut:
    return ChannelFeedbackOut(
        feedback_id=r["id"], application_id=r["application_id"], hotline_call_id=r["hotline_call_id"],
        channel=r["channel"], work_order=r["work_order"], region_code=r["region_code"], outcome=r["outcome"],
        text=r["text"], state=r["state"], attempts=r["attempts"], next_attempt_at=r["next_attempt_at"],
        last_error=r["last_error"], created_at=r["created_at"], sent_at=r["sent_at"])
