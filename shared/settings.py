"""Settings shared by every service, read from the environment (pydantic-settings).

Each service subclasses :class:`ServiceSettings` and fixes ``service_name``. The
environment variable names are the contract with deploy/ and docker-compose.yml.
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_JWT_SECRET = "dev-only-secret-change-me-in-production-0123456789"
DEV_DATA_KEY = "dev-only-data-key-change-me-in-production-0123456789"


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", env_file=None)

    service_name: str = "service"
    environment: Literal["development", "test", "production"] = "development"
    # Empty means the embedded default: a SQLite file per service under DATA_DIR.
    database_url: str = ""
    data_dir: Path = Path("var")
    db_pool_size: int = 8
    db_max_overflow: int = 8
    event_bus: Literal["inprocess", "kafka"] = "inprocess"
    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    # Apache Kafka supports idempotent producers; the Tansu test broker refuses them.
    kafka_idempotence: bool = True
    kafka_topic_partitions: int = 3
    kafka_fetch_max_wait_ms: int = 5
    # A producer batch per partition of up to this many bytes (aiokafka's default is 16 KiB). A
    # send that finds its partition's batch full waits until that batch is acknowledged, so at
    # 16 KiB a relay round of 100 events (2–3 KiB each) took a produce round trip per ~6 events
    # per partition, one after another. Below Apache Kafka's 1 MiB message.max.bytes.
    kafka_max_batch_bytes: int = 512 * 1024
    # How long the group coordinator waits for a silent consumer before handing its partitions to
    # the others (aiokafka's default). A joining consumer also waits about half of it on the Tansu
    # test broker before it is assigned anything: the tests shorten it to join faster.
    kafka_session_timeout_ms: int = 10000
    consumer_max_retries: int = 3
    consumer_retry_backoff_s: float = 0.2
    # One transaction per fetch (inbox + effects + outbox), see consumer.py.
    consumer_batch: bool = True
    outbox_poll_interval_s: float = 0.5
    # After a wake-up the relay waits this long for more commits before it publishes: under load
    # one round (a transaction and a produce request) then carries several use cases' events.
    outbox_linger_ms: float = 0.0
    # The audit sealer is woken after each commit that left entries pending; this is its safety net.
    audit_seal_interval_s: float = 1.0
    # After a wake-up, how long the sealer waits for more pending entries before linking them.
    audit_seal_linger_ms: float = 20.0
    outbox_batch_size: int = 200
    auth_jwt_secret: str = DEV_JWT_SECRET
    data_encryption_key: str = DEV_DATA_KEY
    calendar_data_file: Path | None = None
    # Abuse limits (shared/limits.py) and the browsers allowed to call the API (web/mobile frontends).
    max_body_bytes: int = 1_048_576
    body_limit_exempt_prefixes: tuple[str, ...] = ()
    public_rate_limit_per_s: float = 20.0
    public_rate_limit_burst: int = 40
    cors_allow_origins: list[str] = []
    # Long-lived start-up objects (models, routes, schemas) are moved out of the collector's
    # sight once started, and young-generation collections run less often: fewer and shorter
    # pauses on the hot path. Process-wide; each service runs in its own process in production
    # (the test suite, which starts many apps in one process, turns it off: a frozen app would
    # never be collected).
    gc_freeze_on_start: bool = True
    gc_gen0_threshold: int = 20000
    # ANALYZE / VACUUM of the service's own tables with autovacuum's default thresholds
    # (shared/table_maintenance.py): "auto" only when the server's autovacuum is off.
    db_maintenance: Literal["auto", "on", "off"] = "auto"
    db_maintenance_interval_s: float = 5.0
    log_level: str = "INFO"
    log_json: bool = True

    @model_validator(mode="after")
    def _defaults_and_safety(self) -> "ServiceSettings":
        if not self.database_url:
            self.database_url = f"sqlite+aiosqlite:///{self.data_dir}/{self.service_name}.db"
        if self.environment == "production":
            # Refuse to run production with a secret anyone can read in this repository.
            if self.auth_jwt_secret == DEV_JWT_SECRET or len(self.auth_jwt_secret) < 32:
                raise ValueError("AUTH_JWT_SECRET must be set to a secret of at least 32 characters in production")
            if self.data_encryption_key == DEV_DATA_KEY or len(self.data_encryption_key) < 32:
                raise ValueError("DATA_ENCRYPTION_KEY must be set to at least 32 characters in production")
        return self

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")
