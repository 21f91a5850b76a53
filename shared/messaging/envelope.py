"""The one envelope every event travels in (CloudEvents-style)."""
from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import Any

import orjson
from pydantic import BaseModel, Field


def _now() -> datetime:
    return datetime.now(timezone.utc)


class Envelope(BaseModel):
    id: str = Field(default_factory=lambda: str(uuid.uuid4()), description="Unique event id (UUID)")
    type: str = Field(description="Event type, e.g. intake.application.submitted")
    version: int = 1
    source: str = Field(description="Producing service")
    subject: str = Field(description="The case or person key; also the Kafka message key")
    time: datetime = Field(default_factory=_now)
    correlation_id: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)

    @property
    def topic(self) -> str:
        return topic_of(self.type)

    def to_bytes(self) -> bytes:
        return orjson.dumps(self.model_dump(mode="json"))

    @classmethod
    def from_bytes(cls, raw: bytes) -> "Envelope":
        return cls.model_validate(orjson.loads(raw))


def topic_of(event_type: str) -> str:
    """Topic per producer and aggregate: ``intake.application.submitted`` → ``intake.application``."""
    parts = event_type.split(".")
    if len(parts) < 3:
        raise ValueError(f"event type {event_type!r} must be <service>.<aggregate>.<what happened>")
    return ".".join(parts[:-1])


def dead_letter_topic(topic: str) -> str:
    return f"{topic}.dlq"
