"""Exports the partner-event JSON Schemas (M2) for partner department systems:

    python -m services.monitoring.schema_export      # writes services/monitoring/schemas/partner-events/

``partner-event.json`` is the body of ``POST /v1/partner-events`` (one of the six types);
``<type>.json`` is each type alone; ``partner.events.reported.json`` is the ``data`` of the
envelope a partner publishes on the ``partner.events`` Kafka topic. A test keeps them equal to the code.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

from shared.events.monitoring import PARTNER_EVENT_MODELS, PartnerEvent, PartnerEventReported

OUT = Path(__file__).resolve().parent / "schemas" / "partner-events"
_BASE = "https://jiuzhu.example/schemas/partner-events/"


def schemas() -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    union = TypeAdapter(PartnerEvent).json_schema()
    out["partner-event.json"] = {"$schema": "https://json-schema.org/draft/2020-12/schema",
                                 "$id": _BASE + "partner-event.json", "title": "PartnerEvent", **union}
    for name, model in PARTNER_EVENT_MODELS.items():
        out[f"{name}.json"] = {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": _BASE + f"{name}.json",
                               **model.model_json_schema()}
    out["partner.events.reported.json"] = {
        "$schema": "https://json-schema.org/draft/2020-12/schema", "$id": _BASE + "partner.events.reported.json",
        "description": f"data of an envelope of type {PartnerEventReported.TYPE} (version {PartnerEventReported.VERSION}) "
                       f"on the partner.events topic; the envelope's subject is the person id",
        **PartnerEventReported.model_json_schema()}
    return out


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, ensure_ascii=False, indent=2, sort_keys=True) + "\n"


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for name, schema in schemas().items():
        (OUT / name).write_text(render(schema), encoding="utf-8")
        print(OUT / name)


if __name__ == "__main__":
    main()
