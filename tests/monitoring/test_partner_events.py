"""M2 partner data over signed HTTP, and the M3–M6 warning rules each event triggers, with
deadlines in working days of the official calendar (2026 National Day: Oct 1–7 off, Sat Oct 10 worked)."""
from __future__ import annotations

from datetime import date

import sqlalchemy as sa

from shared.events.monitoring import PersonDied
from shared.messaging.envelope import Envelope
from shared.messaging.tables import outbox
from tests.conftest import TEST_SESSION_TIMEOUT_MS
from tests.support import auth, eventually

from services.monitoring.models import partner_nonces, partner_records, warnings
from tests.monitoring.helpers import OTHER_VILLAGE, VILLAGE, decision, harness, person


async def _count(h, table) -> int:
    async with h.app.state.runtime.session_factory() as s:
        return int(await s.scalar(sa.select(sa.func.count()).select_from(table)))


async def test_m6_death_of_beneficiary_emits_person_died_and_a_level_1_warning(database_url):
    """M6/P5: a death reported by civil registration → monitoring.person.died (payments stops) in
    the outbox and on the bus, the person leaves the register, a level-1 warning due in 3 working
    days: raised Tue 2026-09-29 → Sep 30, Oct 8, Oct 9 (National Day Oct 1–7 skipped)."""
    pid = person(1)
    async with harness(database_url) as h:
        await h.publish(decision([pid]), subject=pid)
        r = await h.partner_post("civil_registration", {"type": "death", "person_id": pid,
                                                         "occurred_on": "2026-09-27",
                                                         "data": {"record_source": "funeral"}})
        assert r.status_code == 201, r.text
        body = r.json()
        assert body["death_detected"] is True
        [w] = body["warnings"]
        assert (w["rule"], w["kind"], w["level"], w["due_on"]) == ("M6", "death", 1, "2026-10-09")
        assert w["region_code"] == VILLAGE
        async with h.app.state.runtime.session_factory() as s:
            rows = (await s.execute(sa.select(outbox.c.type, outbox.c.payload, outbox.c.topic))).all()
        died = [Envelope.from_bytes(bytes(p)) for t, p, _ in rows if t == PersonDied.TYPE]
        assert len(died) == 1 and died[0].subject == pid
        event = PersonDied.model_validate(died[0].data)
        assert (event.person_id, event.date_of_death, event.source) == (pid, date(2026, 9, 27), "civil_registration")
        await eventually(lambda: _async(h.events(PersonDied.TYPE)))
        hist = (await h.client.get(f"/v1/register/{pid}/history", headers=auth("county_civil_affairs"))).json()
        assert hist["current"] == []
        assert [(x["category"], x["action"], x["valid_to"]) for x in hist["history"]] == [
            ("dibao", "enter", None), ("dibao", "leave", "2026-09-27")]
        # the same death reported again changes nothing (one death warning per person)
        again = await h.partner_post("civil_registration", {"type": "death", "person_id": pid,
                                                             "occurred_on": "2026-09-27"})
        assert again.status_code == 201 and again.json()["warnings"] == []


async def _async(value):
    return value


async def test_m3_risk_rules_levels_and_deadlines(database_url):
    """M3 因病/因失业/因残/因学 for people in the register; levels and days per level are data
    (warning_rules.json): L1 3, L2 5, L3 10 working days. Raised 2026-09-29: L1 → Oct 9, L2 → Oct 12
    (Sat Oct 10 is a make-up working day), L3 → Oct 19."""
    a, b, c, d, e, f = (person(i) for i in range(10, 16))
    async with harness(database_url) as h:
        await h.publish(decision([a, b, c, d, e, f]), subject=a)
        cases = [
            ("medical_insurance", {"type": "medical_expense", "person_id": a, "occurred_on": "2026-09-20",
                                   "data": {"amount": "25000.00"}}, ("M3", "illness", 2, "2026-10-12")),
            ("medical_insurance", {"type": "medical_expense", "person_id": b, "occurred_on": "2026-09-20",
                                   "data": {"amount": "60000.00"}}, ("M3", "illness", 1, "2026-10-09")),
            ("medical_insurance", {"type": "medical_expense", "person_id": c, "occurred_on": "2026-09-20",
                                   "data": {"amount": "19999.99"}}, None),
            ("human_resources", {"type": "unemployment", "person_id": c, "occurred_on": "2026-09-21"},
             ("M3", "unemployment", 3, "2026-10-19")),
            ("disabled_persons_federation", {"type": "disability_certified", "person_id": d,
                                             "occurred_on": "2026-09-22", "data": {"grade": 1, "kind": "physical"}},
             ("M3", "disability", 1, "2026-10-09")),
            ("disabled_persons_federation", {"type": "disability_certified", "person_id": e,
                                             "occurred_on": "2026-09-22", "data": {"grade": 3}},
             ("M3", "disability", 2, "2026-10-12")),
            ("education", {"type": "school_enrollment", "person_id": f, "occurred_on": "2026-09-01",
                           "data": {"stage": "senior_secondary"}}, ("M3", "schooling", 3, "2026-10-19")),
            # not in the register: recorded, no warning
            ("human_resources", {"type": "unemployment", "person_id": person(99), "occurred_on": "2026-09-21"}, None),
        ]
        for partner, body, expected in cases:
            r = await h.partner_post(partner, body)
            assert r.status_code == 201, r.text
            got = [(w["rule"], w["kind"], w["level"], w["due_on"]) for w in r.json()["warnings"]]
            assert got == ([expected] if expected else []), body
        assert await _count(h, partner_records) == len(cases)
        listed = (await h.client.get("/v1/warnings", params={"region_code": "522701000000", "status": "open"},
                                     headers=auth("village_coordinator"))).json()["items"]
        assert len(listed) == 6 and all(w["person_id"].count("*") == 11 for w in listed)  # masked for this role
        full = (await h.client.get("/v1/warnings", params={"region_code": "522701000000"},
                                   headers=auth("township_clerk"))).json()["items"]
        assert {w["person_id"] for w in full} == {a, b, c, d, e, f}  # 审核 roles see the number
        await eventually(lambda: _async(len(h.events("monitoring.warning.raised")) == 6))


async def test_m4_coverage_gaps(database_url):
    """M4 防漏: a 低保边缘 person (M5) with a large medical expense, and a poverty-monitoring person
    with no labor capacity or an income below the local line, who are not covered → M4 warnings;
    the poverty-monitoring people enter the register (M1)."""
    marginal, poor, fine, covered = person(20), person(21), person(22), person(23)
    async with harness(database_url) as h:
        await h.publish(decision([marginal], outcome="denied", reasons=["M5 家庭月人均收入低于低保标准1.5倍"]),
                        subject=marginal)
        await h.publish(decision([covered]), subject=covered)
        r = await h.partner_post("medical_insurance", {"type": "medical_expense", "person_id": marginal,
                                                        "occurred_on": "2026-09-25", "data": {"amount": "30000"}})
        [w] = r.json()["warnings"]
        assert (w["rule"], w["kind"], w["level"]) == ("M4", "coverage_gap", 2)
        pm = lambda pid, **data: {"type": "poverty_monitoring", "person_id": pid, "occurred_on": "2026-09-25",  # noqa: E731
                                  "data": {"region_code": OTHER_VILLAGE, "category": "unstable_post_poverty", **data}}
        r1 = await h.partner_post("rural_revitalization", pm(poor, labor_capacity="none"))
        r2 = await h.partner_post("rural_revitalization", pm(fine, monthly_per_capita_income="900.00"))
        r3 = await h.partner_post("rural_revitalization", pm(covered, monthly_per_capita_income="100.00"))
        assert [x["rule"] for x in r1.json()["warnings"]] == ["M4"]
        assert r1.json()["warnings"][0]["region_code"] == OTHER_VILLAGE
        assert r2.json()["warnings"] == [] and r3.json()["warnings"] == []  # above the line; already covered
        assert r1.json()["register_entries"] == 1
        reg = (await h.client.get("/v1/register", params={"region_code": "522701002000",
                                                          "category": "unstable_post_poverty"},
                                  headers=auth("monitoring_operator"))).json()
        assert reg["total"] == 3
        pot = (await h.client.get("/v1/potential-cases", params={"region_code": "522701000000"},
                                  headers=auth("township_clerk"))).json()
        assert [(p["source"], p["person_id"]) for p in pot["items"]] == [("denied_marginal", marginal)]


async def test_partner_requests_that_are_refused(sqlite_url):
    """M2: bad signature, altered body, replayed nonce, stale timestamp → 401; a token for another
    partner, or a partner posting another partner's type → 403; nothing stored by any of them."""
    pid = person(30)
    body = {"type": "death", "person_id": pid, "occurred_on": "2026-09-20"}
    async with harness(sqlite_url) as h:
        r = await h.partner_post("civil_registration", body, key="not-the-key-" * 3)
        assert r.status_code == 401 and "signature" in r.json()["detail"].lower()
        r = await h.partner_post("civil_registration", body, tamper=b'{"type": "death", "person_id": "%s", '
                                 b'"occurred_on": "2026-09-21"}' % pid.encode())
        assert r.status_code == 401
        stale = int(h.clock().timestamp()) - 301
        r = await h.partner_post("civil_registration", body, ts=stale)
        assert r.status_code == 401 and "stale" in r.json()["detail"]
        r = await h.partner_post("medical_insurance", body)
        assert r.status_code == 403 and "may not report death" in r.json()["detail"]
        r = await h.partner_post("civil_registration", body, sub="medical_insurance")
        assert r.status_code == 403
        assert r.headers["content-type"].startswith("application/problem+json")
        assert await _count(h, partner_records) == 0 and await _count(h, partner_nonces) == 0
        ok = await h.partner_post("civil_registration", body, nonce="nonce-0001")
        assert ok.status_code == 201
        replay = await h.partner_post("civil_registration", body, nonce="nonce-0001")
        assert replay.status_code == 401 and "already used" in replay.json()["detail"]
        assert await _count(h, partner_records) == 1
        # a token of another role never gets here
        r = await h.client.post("/v1/partner-events", json=body, headers=auth("monitoring_operator"))
        assert r.status_code == 403


async def test_bad_partner_body_is_422_naming_the_field_and_stores_nothing(sqlite_url):
    async with harness(sqlite_url) as h:
        r = await h.partner_post("medical_insurance", {"type": "medical_expense", "person_id": person(31),
                                                        "occurred_on": "2026-09-20", "data": {"amount": 12.5}})
        assert r.status_code == 422
        assert r.headers["content-type"].startswith("application/problem+json")
        assert [e["field"] for e in r.json()["errors"]] == ["data.amount"]
        good = person(31)
        bad_id = good[:-1] + ("1" if good[-1] != "1" else "2")
        r = await h.partner_post("medical_insurance", {"type": "medical_expense", "person_id": bad_id,
                                                        "occurred_on": "2026-09-20", "data": {"amount": "1"}})
        assert r.status_code == 422 and {e["field"] for e in r.json()["errors"]} == {"person_id"}
        r = await h.partner_post("medical_insurance", {"type": "medical_expense", "person_id": person(31),
                                                        "occurred_on": "2026-12-20", "data": {"amount": "1"}})
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "occurred_on"
        r = await h.partner_post("medical_insurance", {"type": "flood", "person_id": person(31),
                                                        "occurred_on": "2026-09-20"})
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "type"
        r = await h.partner_post("medical_insurance", b"{not json")
        assert r.status_code == 422
        assert await _count(h, partner_records) == 0 and await _count(h, warnings) == 0
        assert await _count(h, partner_nonces) == 0


async def test_m2_partner_events_topic_in_process(sqlite_url):
    """Partners that publish directly: topic ``partner.events``, type ``partner.events.reported``;
    the owner check applies (a refused event is a visible dead letter); redelivery changes nothing."""
    from shared.events.monitoring import PartnerEventReported
    from shared.messaging.tables import dead_letters

    pid = person(35)
    async with harness(sqlite_url) as h:
        await h.publish(decision([pid]), subject=pid)
        ok = PartnerEventReported(partner_id="civil_registration",
                                  event={"type": "death", "person_id": pid, "occurred_on": "2026-09-20"})
        env = await h.publish(ok, subject=pid, source="civil_registration")
        assert env.topic == "partner.events"
        await h.bus.publish([__import__("shared.messaging.bus", fromlist=["OutgoingMessage"]).OutgoingMessage(
            topic=env.topic, key=pid, value=env.to_bytes())])  # redelivered
        refused = PartnerEventReported(partner_id="education",
                                       event={"type": "death", "person_id": person(36), "occurred_on": "2026-09-20"})
        await h.publish(refused, subject=person(36), source="education")
        assert await _count(h, partner_records) == 1 and await _count(h, warnings) == 1
        async with h.app.state.runtime.session_factory() as s:
            [dl] = (await s.execute(sa.select(dead_letters))).mappings().all()
        assert dl["topic"] == "partner.events" and "may not report death" in dl["error"]
        health = (await h.client.get("/v1/ops/health", headers=auth("monitoring_operator"))).json()
        assert health["dead_letters_unresolved"] == 1 and health["dead_letters_recent"][0]["topic"] == "partner.events"
        await eventually(lambda: _async(h.events(PersonDied.TYPE)))


async def test_m2_partner_events_topic_on_kafka(kafka_broker, tmp_path):
    """The same over a real Kafka-protocol broker: a partner's producer writes to ``partner.events``."""
    from aiokafka import AIOKafkaProducer

    from shared.events.monitoring import PartnerEventReported
    from shared.messaging.kafka import KafkaBus

    pid = person(37)
    url = f"sqlite+aiosqlite:///{tmp_path}/kafka.db"
    bus = KafkaBus(kafka_broker.bootstrap, client_id="monitoring-test", idempotence=False, partitions=1,
                   session_timeout_ms=TEST_SESSION_TIMEOUT_MS)
    async with harness(url, bus=bus) as h:
        await h.partner_post("rural_revitalization", {"type": "poverty_monitoring", "person_id": pid,
                                                      "occurred_on": "2026-09-20", "data": {
                                                          "category": "at_risk_of_poverty", "region_code": VILLAGE}})
        env = Envelope(type=PartnerEventReported.TYPE, source="medical_insurance", subject=pid, data=PartnerEventReported(
            partner_id="medical_insurance", event={"type": "medical_expense", "person_id": pid,
                                                   "occurred_on": "2026-09-21", "data": {"amount": "45000.00"}}
        ).model_dump(mode="json"))
        producer = AIOKafkaProducer(bootstrap_servers=kafka_broker.bootstrap, enable_idempotence=False)
        await producer.start()
        try:
            await bus.ensure_topics(["partner.events"])
            await producer.send_and_wait("partner.events", env.to_bytes(), key=pid.encode())
        finally:
            await producer.stop()

        async def stored() -> int:
            return await _count(h, warnings)
        await eventually(stored, timeout=30)
        [w] = (await h.client.get("/v1/warnings", headers=auth("monitoring_operator"))).json()["items"]
        # an at-risk person (M1, from rural revitalization) not covered, with a large expense: M4 防漏
        assert (w["rule"], w["kind"], w["label"]) == ("M4", "coverage_gap", "防漏·因病")
