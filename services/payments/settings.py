"""Payments settings (environment variables: the field names in upper case, e.g. BANK_URL)."""
from __future__ import annotations

from pydantic import Field

from shared.settings import ServiceSettings


class Settings(ServiceSettings):
    service_name: str = "payments"

    # Bank adapter (4): every payment is POSTed to {BANK_URL}/payments with an Idempotency-Key.
    # Empty: no bank is configured and payments wait in `ready` (visible) until one is.
    bank_url: str = ""
    bank_timeout_s: float = Field(default=10.0, gt=0)
    bank_retries: int = Field(default=2, ge=0, le=10)  # in-call re-sends, same key
    bank_concurrency: int = Field(default=8, ge=1, le=256)
    bank_dispatch: bool = True  # the background sender; off to drive it by hand (tests)
    bank_poll_interval_s: float = Field(default=5.0, gt=0)
    bank_batch_size: int = Field(default=200, ge=1)
    # How long a claimed `sending` payment belongs to the process that claimed it. After that
    # (a crash, a restart) any process re-sends it with the same key. None: derived from the
    # timeout and retries.
    bank_lease_s: float | None = None

    # P4: reserve money untouched this many days is 资金趴窝.
    reserve_idle_days: int = Field(default=90, ge=1)
    # Periodic scans (deadlines P3, reserve alerts P4, staged releases L4, waiting payouts); 0 = off.
    scan_interval_s: float = Field(default=3600.0, ge=0)
    # L4 一次审批、分阶段救助: months between the stages of one approval.
    stage_interval_months: int = Field(default=1, ge=0, le=12)
    # D5: months of a gradual exit when a benefit.changed event gives no end date.
    gradual_exit_default_months: int = Field(default=6, ge=1, le=24)

    @property
    def lease_s(self) -> float:
        if self.bank_lease_s is not None:
            return self.bank_lease_s
        return self.bank_timeout_s * (self.bank_retries + 1) + 30.0
