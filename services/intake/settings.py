from pydantic import AnyHttpUrl

from shared.settings import ServiceSettings


class Settings(ServiceSettings):
    service_name: str = "intake"
    # 12345 hotline platform: where work orders are closed with the outcome (反馈, I2).
    hotline_callback_url: AnyHttpUrl | None = None
    hotline_callback_timeout_s: float = 5.0
    # Connection-level retries inside one attempt (httpx transport); delivery-level retries
    # follow with exponential backoff from the channel_feedback table.
    hotline_callback_connect_retries: int = 2
    feedback_retry_base_s: float = 10.0
    feedback_retry_max_s: float = 1800.0
    # After this many failed attempts automatic retries stop; an operator retries by hand.
    feedback_max_attempts: int = 15
    feedback_poll_interval_s: float = 5.0
    feedback_batch_size: int = 50
    # 限时办理 (I3): how often the background scan runs; 0 turns the background scan off
    # (POST /v1/deadline-scans still runs it on demand).
    deadline_scan_interval_s: float = 600.0
    metrics_refresh_timeout_s: float = 2.0
    # PostgreSQL: write new applications with one statement on a small asyncpg pool (fastpath.py).
    application_fast_path: bool = True
    application_fast_path_pool_size: int = 20
    # Group commit (fastpath.py): how many group statements may be in flight at once.
    application_fast_path_writers: int = 4
    # Serve POST /v1/applications without FastAPI's per-request machinery (api.py); off: the
    # documented route serves it (tests compare the two).
    application_direct_route: bool = True
