"""The fault schedule (seeded: the same seed gives the same schedule) and the injectors."""
from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import asyncpg

if TYPE_CHECKING:  # pragma: no cover
    from tests.chaos.harness import Campaign

SERVICES = ("intake", "eligibility", "payments", "monitoring")
# Weights: process kills cost a restart and a consumer-group rejoin (~5 s on the test broker),
# so they are rarer than the cheap faults; every kind still appears in a 50-fault run.
KINDS: dict[str, int] = {
    "kill9": 3, "broker_pause": 2, "pg_terminate": 3, "bank_timeout": 2, "bank_5xx": 2,
    "bank_late": 2, "duplicate_event": 3, "poison_event": 1,
}


@dataclass(frozen=True)
class Fault:
    index: int
    kind: str
    target: str | None
    after_steps: int  # workload steps before this fault
    pause_s: float

    def __str__(self) -> str:
        return f"#{self.index:04d} {self.kind}{'(' + self.target + ')' if self.target else ''}"


def schedule(seed: int, n_faults: int, steps_per_fault: tuple[int, int] = (1, 4)) -> list[Fault]:
    rng = random.Random(seed)
    kinds = list(KINDS)
    weights = [KINDS[k] for k in kinds]
    out = []
    for i in range(n_faults):
        kind = rng.choices(kinds, weights)[0]
        target = rng.choice(SERVICES) if kind in ("kill9", "pg_terminate") else None
        out.append(Fault(i, kind, target, rng.randint(*steps_per_fault), round(rng.uniform(0.3, 2.0), 2)))
    return out


async def inject(c: "Campaign", fault: Fault) -> None:
    if fault.kind == "kill9":
        c.cluster.restart(fault.target or "intake", hard=True)
    elif fault.kind == "broker_pause":
        c.cluster.broker.pause()  # not stop(): see Broker.pause
        try:
            time.sleep(fault.pause_s * 2)
        finally:
            c.cluster.broker.resume()
    elif fault.kind == "pg_terminate":
        db = c.db_names[fault.target or "payments"]
        conn = await asyncpg.connect(c.pg_admin_dsn)
        try:
            await conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                               "WHERE datname = $1 AND pid <> pg_backend_pid()", db)
        finally:
            await conn.close()
    elif fault.kind == "bank_timeout":
        c.bank.inject("timeout")
    elif fault.kind == "bank_5xx":
        c.bank.inject("5xx")
    elif fault.kind == "bank_late":
        c.bank.inject("late")
    elif fault.kind == "duplicate_event":
        await c.redeliver_random_event(fault.index)
    elif fault.kind == "poison_event":
        await c.publish_poison(fault.index)
    else:  # pragma: no cover
        raise ValueError(fault.kind)
