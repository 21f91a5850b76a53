"""Monitoring settings (environment variables; JSON for the maps)."""
from __future__ import annotations

from decimal import Decimal

from pydantic import Field, field_validator, model_validator

from shared.settings import ServiceSettings


class Settings(ServiceSettings):
    service_name: str = "monitoring"
    # M2: partner id → HMAC-SHA256 signing key, e.g. PARTNER_KEYS='{"medical_insurance": "…"}'.
    # A partner without a key cannot post (401). Keys of at least 32 characters in production.
    partner_keys: dict[str, str] = Field(default_factory=dict)
    # M2: partner id → the event types it owns, added to / overriding data/partners.json.
    partner_types: dict[str, list[str]] = Field(default_factory=dict)
    partner_signature_max_age_s: int = Field(default=300, ge=30, le=3600)
    # M3 因病: an out-of-pocket medical expense at or above this raises a warning.
    medical_expense_threshold: Decimal = Decimal("20000.00")
    # M5: the marginal band's multiplier of the 低保 standard when a decision gives only the standard.
    marginal_multiplier: Decimal = Decimal("1.5")
    # M2 comparison files: rows per insert batch, per-row errors kept per file, longest line.
    comparison_batch_rows: int = Field(default=5000, ge=100, le=100_000)
    comparison_max_errors_stored: int = Field(default=10_000, ge=10)
    comparison_max_line_bytes: int = Field(default=64 * 1024, ge=1024)
    comparison_max_file_bytes: int = Field(default=2 * 1024**3, ge=1024)
    # M2 on PostgreSQL: CSV files are spooled to disk and read by DuckDB (columnar.py); off, or for a
    # file DuckDB cannot read exactly, every row goes through the row-by-row parser instead.
    comparison_columnar: bool = True
    comparison_spool_dir: str | None = None  # None: the system's temporary directory
    comparison_duckdb_threads: int = Field(default=2, ge=1, le=64)
    comparison_duckdb_memory: str = "1GB"
    # M3: how often the escalation scan runs in the background (0: only by POST /v1/warnings/escalations).
    escalation_scan_interval_s: float = Field(default=3600.0, ge=0)
    # Comparison files are streamed and limited by comparison_max_file_bytes, not the kernel's
    # 1 MiB request-body limit (MAX_BODY_BYTES still applies to every other endpoint).
    body_limit_exempt_prefixes: tuple[str, ...] = ("/v1/comparison-files",)

    @field_validator("partner_types")
    @classmethod
    def _known_types(cls, v: dict[str, list[str]]) -> dict[str, list[str]]:
        from shared.events.monitoring import PARTNER_EVENT_TYPES
        for partner, types in v.items():
            unknown = set(types) - set(PARTNER_EVENT_TYPES)
            if unknown:
                raise ValueError(f"PARTNER_TYPES[{partner}] has unknown types {sorted(unknown)}")
        return v

    @model_validator(mode="after")
    def _partner_key_strength(self) -> "Settings":
        if self.environment == "production":
            weak = sorted(p for p, k in self.partner_keys.items() if len(k) < 32)
            if weak:
                raise ValueError(f"PARTNER_KEYS: keys of {weak} must have at least 32 characters in production")
        return self
