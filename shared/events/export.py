"""Exports every event type as a JSON Schema file and the whole bus as one AsyncAPI document.

    python -m shared.events.export          # rewrite schemas/ from the code
    python -m shared.events.export --check  # fail if schemas/ differs from the code (CI)
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from shared.events import REGISTRY
from shared.messaging.envelope import Envelope, dead_letter_topic, topic_of

ROOT = Path(__file__).resolve().parents[2] / "schemas"


def event_schema(event_type: str) -> dict[str, Any]:
    cls = REGISTRY[event_type]
    data = cls.model_json_schema(mode="serialization")
    envelope = Envelope.model_json_schema(mode="serialization")
    envelope["$defs"] = {**envelope.get("$defs", {}), **data.pop("$defs", {})}
    envelope["properties"]["type"] = {"const": event_type, "type": "string"}
    envelope["properties"]["version"] = {"const": cls.VERSION, "type": "integer"}
    envelope["properties"]["data"] = data
    envelope["title"] = event_type
    envelope["description"] = (cls.__doc__ or "").strip()
    envelope["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    envelope["$id"] = f"urn:jiuzhu:event:{event_type}:v{cls.VERSION}"
    return envelope


def asyncapi() -> dict[str, Any]:
    channels: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    for event_type in sorted(REGISTRY):
        topic = topic_of(event_type)
        name = event_type.replace(".", "_")
        messages[name] = {"name": event_type, "title": event_type, "contentType": "application/json",
                          "summary": ((REGISTRY[event_type].__doc__ or "").strip().splitlines() or [""])[0],
                          "payload": {"$ref": f"./events/{event_type}.json"}}
        ch = channels.setdefault(topic, {"address": topic, "messages": {},
                                         "description": f"Kafka topic {topic}; key = subject; dead letters in {dead_letter_topic(topic)}"})
        ch["messages"][name] = {"$ref": f"#/components/messages/{name}"}
        producer = event_type.split(".")[0]
        op = operations.setdefault(f"{producer}_publishes_{topic.replace('.', '_')}", {
            "action": "send", "channel": {"$ref": f"#/channels/{topic}"}, "messages": []})
        op["messages"].append({"$ref": f"#/channels/{topic}/messages/{name}"})
    return {"asyncapi": "3.0.0",
            "info": {"title": "社会救助 platform events", "version": "1.0.0",
                     "description": "Every event travels in one envelope (id, type, version, source, subject, time, "
                                    "correlation_id, data). Delivery is at-least-once; consumers are idempotent by id."},
            "defaultContentType": "application/json",
            "channels": channels, "operations": operations, "components": {"messages": messages}}


def render() -> dict[Path, str]:
    files = {ROOT / "events" / f"{t}.json": _dump(event_schema(t)) for t in sorted(REGISTRY)}
    files[ROOT / "asyncapi.json"] = _dump(asyncapi())
    return files


def _dump(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, indent=2, sort_keys=True) + "\n"


def differences() -> list[str]:
    wanted = render()
    problems = [f"{p.relative_to(ROOT.parent)} is out of date" for p, text in wanted.items()
                if not p.exists() or p.read_text(encoding="utf-8") != text]
    existing = set((ROOT / "events").glob("*.json")) if (ROOT / "events").exists() else set()
    problems += [f"{p.relative_to(ROOT.parent)} has no event type in the code" for p in existing - set(wanted)]
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Export event JSON Schemas and the AsyncAPI document")
    parser.add_argument("--check", action="store_true")
    ns = parser.parse_args(argv)
    if ns.check:
        diffs = differences()
        for d in diffs:
            print(d)
        return 1 if diffs else 0
    (ROOT / "events").mkdir(parents=True, exist_ok=True)
    for old in (ROOT / "events").glob("*.json"):
        old.unlink()
    for path, text in render().items():
        path.write_text(text, encoding="utf-8")
    print(f"wrote {len(REGISTRY)} event schemas and asyncapi.json to {ROOT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
