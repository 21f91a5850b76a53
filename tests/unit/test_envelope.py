from datetime import datetime, timezone

import pytest

from shared.events import REGISTRY
from shared.events.eligibility import CaseOpened
from shared.messaging.envelope import Envelope, dead_letter_topic, topic_of


def test_topic_is_producer_and_aggregate():
    assert topic_of("intake.application.submitted") == "intake.application"
    assert topic_of("eligibility.case.opened") == "eligibility.case"
    assert dead_letter_topic("intake.application") == "intake.application.dlq"
    with pytest.raises(ValueError):
        topic_of("nodots")


def test_envelope_round_trip_keeps_every_field():
    env = Envelope(type="eligibility.case.opened", source="eligibility", subject="a1", correlation_id="c1",
                   data={"x": 1})
    back = Envelope.from_bytes(env.to_bytes())
    assert back == env
    assert back.time.tzinfo is not None


def test_registry_knows_every_event_type_once():
    assert REGISTRY["eligibility.case.opened"] is CaseOpened
    for name, cls in REGISTRY.items():
        assert cls.TYPE == name
        topic_of(name)


def test_event_data_rejects_unknown_fields():
    now = datetime.now(timezone.utc)
    ok = dict(case_id="c", application_id="a", channel="window", program="dibao", region_code="522701001000",
              handling_region_code="522701001000", applicant_person_id="x", household_size=1,
              received_at=now, opened_at=now)
    CaseOpened(**ok)
    with pytest.raises(Exception):
        CaseOpened(**ok, surprise=1)
