"""Typed event schemas of all services. Importing this package registers every type."""
from shared.events import eligibility, intake, monitoring, payments  # noqa: F401  (registration side effect)
from shared.events.base import REGISTRY, EventData, event_class

__all__ = ["REGISTRY", "EventData", "event_class"]
