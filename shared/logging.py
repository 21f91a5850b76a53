"""Structured JSON logs with correlation ids; identity numbers never reach a log line."""
from __future__ import annotations

import logging
import re
import sys
import uuid
from contextvars import ContextVar
from typing import Any

import structlog

correlation_id_var: ContextVar[str | None] = ContextVar("correlation_id", default=None)

# 18-character 居民身份证号 and long digit runs (bank accounts): masked wherever they appear.
_ID_RE = re.compile(r"(?<![0-9A-Za-z])(\d{3})\d{11}(\d{3}[\dXx])(?![0-9A-Za-z])")
_ACCOUNT_RE = re.compile(r"(?<!\d)\d{8,}(\d{4})(?!\d)")


def mask_sensitive(text: str) -> str:
    text = _ID_RE.sub(lambda m: m.group(1) + "*" * 11 + m.group(2), text)
    return _ACCOUNT_RE.sub(lambda m: "*" * (len(m.group(0)) - 4) + m.group(1), text)


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return mask_sensitive(value)
    if isinstance(value, dict):
        return {k: _scrub(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_scrub(v) for v in value]
    return value


def _scrub_processor(_: Any, __: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    return {k: _scrub(v) for k, v in event_dict.items()}


def _add_correlation(_: Any, __: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    cid = correlation_id_var.get()
    if cid and "correlation_id" not in event_dict:
        event_dict["correlation_id"] = cid
    return event_dict


_configured = False


def configure_logging(level: str = "INFO", json: bool = True) -> None:
    """structlog for our code, and the same JSON renderer for the standard library's loggers
    (uvicorn, alembic, aiokafka), so every line is one JSON object with the correlation id."""
    global _configured
    if _configured:
        return
    _configured = True
    lvl = getattr(logging, level.upper(), logging.INFO)
    shared_processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        _add_correlation,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: Any = structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer()
    structlog.configure(
        processors=[*shared_processors, structlog.processors.format_exc_info, _scrub_processor, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(lvl),
        logger_factory=structlog.PrintLoggerFactory(sys.stdout),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared_processors, structlog.stdlib.add_logger_name],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.format_exc_info, _scrub_processor, renderer],
    ))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(lvl)
    for noisy in ("aiokafka", "alembic.runtime.migration"):
        logging.getLogger(noisy).setLevel(max(lvl, logging.WARNING))


def new_correlation_id() -> str:
    return uuid.uuid4().hex


def get_logger(name: str) -> Any:
    return structlog.get_logger(name)
