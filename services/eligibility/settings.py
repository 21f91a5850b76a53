"""Eligibility settings (environment variables, pydantic-settings).

| variable | default | meaning |
| --- | --- | --- |
| ``LOAD_EXAMPLE_STANDARDS`` | true in development, false otherwise | load ``data/example_standards.json`` (EXAMPLE county 522701, labelled example data) at start |
| ``PARTNER_VERIFICATION_URLS`` | ``{}`` | JSON ``{source: url}`` for the means-test partners (经济状况核对): hukou, social_insurance, vehicles, real_estate, housing_fund, bank_deposits; a source left out is "not configured" and waits for a clerk's manual entry |
| ``PARTNER_VERIFICATION_TOKEN`` | — | bearer token sent to the partner endpoints |
| ``PARTNER_TIMEOUT_S`` | 5 | one HTTP attempt's deadline |
| ``PARTNER_RETRIES`` | 2 | further attempts within one round (timeouts, connection errors, 5xx, 429) |
| ``VERIFICATION_RETRY_S`` | 300 | a round that left configured partners unanswered is repeated after this long (doubling) |
| ``VERIFICATION_MAX_ROUNDS`` | 8 | after this many rounds automatic asking stops; the case waits for a manual entry |
| ``WORKER_POLL_INTERVAL_S`` | 1 | how often the background worker looks for cases to verify and re-evaluation jobs |
| ``REEVALUATION_BATCH_SIZE`` | 5000 | cases per re-evaluation batch (one transaction each, keyset pagination) |
| ``REEVALUATION_LANES`` | 2 | PostgreSQL: batches in flight at once (the engine's work overlaps the database's) |
| ``DECISION_GROUP_COMMIT`` | true | PostgreSQL: officers' decisions that arrive while earlier ones are being written share one transaction (one lock, one vault read, one write statement, one commit; decisions.py) |
| ``DECISION_GROUP_WRITERS`` | 2 | decision groups in flight at once |
| ``DECISION_GROUP_MAX`` | 32 | decisions per group at most |
| ``STALE_STANDARD_MONTHS`` | 12 | a 低保 standard not adjusted for longer is flagged stale (动态调整, SX 二(三)5) |
"""
from __future__ import annotations

import json
from typing import Annotated, Any

from pydantic import field_validator, model_validator
from pydantic_settings import NoDecode

from shared.settings import ServiceSettings

from services.eligibility.domain.means_test import SOURCES as PARTNER_SOURCES  # 经济状况核对 (SX 二(四)2, M2)


class Settings(ServiceSettings):
    service_name: str = "eligibility"
    load_example_standards: bool | None = None
    partner_verification_urls: Annotated[dict[str, str], NoDecode] = {}
    partner_verification_token: str | None = None
    partner_timeout_s: float = 5.0
    decision_group_commit: bool = True
    decision_group_writers: int = 4
    decision_group_max: int = 32
    partner_retries: int = 2
    partner_retry_backoff_s: float = 0.5
    partner_concurrency: int = 16
    verification_retry_s: float = 300.0
    verification_max_rounds: int = 8
    verification_batch_size: int = 20
    worker_poll_interval_s: float = 1.0
    reevaluation_batch_size: int = 5000
    reevaluation_lanes: int = 2
    stale_standard_months: int = 12

    @field_validator("partner_verification_urls", mode="before")
    @classmethod
    def _parse_urls(cls, v: Any) -> Any:
        if v is None:
            return {}
        if isinstance(v, str):
            v = v.strip()
            if not v:
                return {}
            try:
                v = json.loads(v)
            except json.JSONDecodeError as exc:
                raise ValueError(f"PARTNER_VERIFICATION_URLS must be a JSON object {{source: url}}: {exc}") from None
        if not isinstance(v, dict):
            raise ValueError("PARTNER_VERIFICATION_URLS must be a JSON object {source: url}")
        unknown = sorted(set(v) - set(PARTNER_SOURCES))
        if unknown:
            raise ValueError(f"unknown partner sources {unknown}; known: {', '.join(PARTNER_SOURCES)}")
        out: dict[str, str] = {}
        for source, url in v.items():
            if url in (None, ""):
                continue  # an empty entry means "not configured"
            if not isinstance(url, str) or not url.startswith(("http://", "https://")):
                raise ValueError(f"partner URL for {source} must be an http(s) URL")
            out[source] = url
        return out

    @model_validator(mode="after")
    def _example_default(self) -> "Settings":
        if self.load_example_standards is None:
            # Example data only in the embedded/demo run; never by default in production or tests.
            self.load_example_standards = self.environment == "development"
        if min(self.reevaluation_batch_size, self.reevaluation_lanes, self.stale_standard_months) < 1:
            raise ValueError("REEVALUATION_BATCH_SIZE, REEVALUATION_LANES and STALE_STANDARD_MONTHS must be positive")
        return self
