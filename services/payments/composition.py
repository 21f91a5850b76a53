"""The payments use cases wired together (one object per app), and the periodic work."""
from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import sqlalchemy as sa

from shared.calendar import WorkingCalendar
from shared.logging import get_logger
from shared.runtime import ServiceRuntime

from services.payments import payment_ops
from services.payments.bank import Bank
from services.payments.clocks import PaymentClockService
from services.payments.disbursements import DisbursementService
from services.payments.domain import payments as ps
from services.payments.models import payments
from services.payments.payouts import PayoutService
from services.payments.payroll import PayrollService
from services.payments.reconciliation import ReconciliationService
from services.payments.reserve import ReserveService
from services.payments.settings import Settings
from services.payments.storage import today_shanghai

log = get_logger("payments")
SCANNER = "system:scheduler"


@dataclass
class Payments:
    runtime: ServiceRuntime
    settings: Settings
    calendar: WorkingCalendar
    bank: Bank | None
    clocks: PaymentClockService = field(init=False)
    payouts: PayoutService = field(init=False)
    disbursements: DisbursementService = field(init=False)
    payroll: PayrollService = field(init=False)
    reserve: ReserveService = field(init=False)
    reconciliation: ReconciliationService = field(init=False)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        self.clocks = PaymentClockService(self.runtime, self.calendar)
        self.payouts = PayoutService(self.runtime, self.settings, self.bank, on_linshi_paid=self._linshi_paid)
        self.disbursements = DisbursementService(self.runtime, self.settings, self.clocks, self.payouts.wake)
        self.payroll = PayrollService(self.runtime, self.settings, self.payouts.wake)
        self.reserve = ReserveService(self.runtime, self.settings, self.payouts.wake)
        self.reconciliation = ReconciliationService(self.runtime)

    async def _linshi_paid(self, tx: Any, p: Any, paid_at: Any) -> None:
        await self.disbursements.on_payment_paid(tx, p, paid_at)

    # -- periodic work: also callable by hand (endpoint, CLI, tests) with a given "today" ----------
    async def tick(self, today: date) -> dict[str, Any]:
        async with self.runtime.uow() as tx:
            released = await payment_ops.release_due(tx.session, today, actor=SCANNER)
            sources = list((await tx.session.execute(sa.select(payments.c.source_account).where(
                payments.c.status == ps.AWAITING_FUNDS).distinct())).scalars())
            funded = 0
            for source in sorted(sources):
                funded += await payment_ops.fund_waiting(tx.session, source, actor=SCANNER)
        deadlines = await self.clocks.scan(today)
        alerts = await self.reserve.scan(today)
        if released or funded:
            self.payouts.wake()
        return {"released": released, "funded": funded, "deadlines": deadlines, "reserve_alerts": alerts}

    async def _periodic(self) -> None:
        while True:
            try:
                await self.tick(today_shanghai())
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("periodic_scan_failed", error=f"{type(exc).__name__}: {exc}"[:300])
            await asyncio.sleep(self.settings.scan_interval_s)

    def start(self) -> None:
        if self.bank is not None and self.settings.bank_dispatch:
            self._tasks.append(asyncio.create_task(self.payouts.run_forever(), name="payments-bank-sender"))
        if self.settings.scan_interval_s > 0:
            self._tasks.append(asyncio.create_task(self._periodic(), name="payments-scans"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(BaseException):
                await task
        self._tasks.clear()
        if self.bank is not None:
            with contextlib.suppress(Exception):
                await self.bank.aclose()
