"""The JSON Schema files and the AsyncAPI document in schemas/ are what the code says."""
import json

from shared.events import REGISTRY
from shared.events.export import ROOT, differences


def test_checked_in_schemas_match_the_code():
    assert differences() == [], "run: python -m shared.events.export"


def test_asyncapi_lists_every_event_on_its_topic():
    doc = json.loads((ROOT / "asyncapi.json").read_text(encoding="utf-8"))
    names = {m["name"] for m in doc["components"]["messages"].values()}
    assert names == set(REGISTRY)
    assert "intake.application" in doc["channels"]
