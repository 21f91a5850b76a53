"""Typed event payloads. Each event type is a pydantic model registered under its type name."""
from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict

REGISTRY: dict[str, type["EventData"]] = {}


class EventData(BaseModel):
    """Base of every event's ``data``. Subclasses set ``TYPE`` (``<service>.<aggregate>.<fact>``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    TYPE: ClassVar[str] = ""
    VERSION: ClassVar[int] = 1

    @classmethod
    def __pydantic_init_subclass__(cls, **kw: object) -> None:
        super().__pydantic_init_subclass__(**kw)
        if cls.TYPE:
            if cls.TYPE in REGISTRY and REGISTRY[cls.TYPE] is not cls:
                raise ValueError(f"event type {cls.TYPE} registered twice")
            REGISTRY[cls.TYPE] = cls


def event_class(event_type: str) -> type[EventData]:
    return REGISTRY[event_type]
