"""What must hold after any fault schedule, checked against each service's own database, the
bank's own record and the broker — not by eye."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import asyncpg

from shared.crypto import cipher_for
from tests.cluster import DATA_KEY

if TYPE_CHECKING:  # pragma: no cover
    from tests.chaos.harness import Campaign


@dataclass
class Verdict:
    name: str
    ok: bool
    detail: str
    examples: list[Any] = field(default_factory=list)

    def __str__(self) -> str:
        mark = "ok  " if self.ok else "FAIL"
        extra = f" e.g. {self.examples[:3]}" if self.examples and not self.ok else ""
        return f"[{mark}] {self.name}: {self.detail}{extra}"


async def _rows(dsn: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()


async def one_case_per_application(c: "Campaign") -> Verdict:
    accepted = {r["id"] for r in await _rows(c.dsn("intake"), "SELECT id FROM applications WHERE status <> 'received'")}
    cases = await _rows(c.dsn("eligibility"), "SELECT application_id, count(*) AS n FROM cases GROUP BY application_id")
    by_app = {r["application_id"]: r["n"] for r in cases}
    missing = sorted(accepted - set(by_app))
    doubled = sorted(a for a, n in by_app.items() if n != 1)
    orphans = sorted(set(by_app) - accepted)
    ok = not missing and not doubled and not orphans and accepted == set(c.accepted_applications)
    return Verdict("every accepted application has exactly one case", ok,
                   f"{len(accepted)} accepted (client saw {len(c.accepted_applications)}), {len(by_app)} with cases, "
                   f"{len(missing)} missing, {len(doubled)} doubled, {len(orphans)} orphan",
                   missing + doubled + orphans)


async def paid_once_at_the_bank(c: "Campaign") -> Verdict:
    paid = {r["id"]: r["amount_fen"] for r in await _rows(c.dsn("payments"), "SELECT id, amount_fen FROM payments WHERE status = 'paid'")}
    executed = c.bank.record.executed_by_payment()
    problems = []
    for pid, amount in paid.items():
        runs = executed.get(pid, [])
        if len(runs) != 1:
            problems.append((pid, f"bank executed {len(runs)} times"))
        elif int(round(float(runs[0].amount) * 100)) != amount:
            problems.append((pid, f"bank amount {runs[0].amount} vs {amount} fen"))
    for pid, runs in executed.items():
        if pid not in paid:
            problems.append((pid, f"bank paid ({len(runs)}x) but payments does not say paid"))
    requests = len(c.bank.record.requests)
    return Verdict("every approved payment reached the bank exactly once", not problems,
                   f"{len(paid)} paid, {sum(len(v) for v in executed.values())} executed by the bank "
                   f"from {requests} requests (retries and faults included)", problems)


async def booked_once(c: "Campaign") -> Verdict:
    rows = await _rows(c.dsn("payments"), """
        SELECT p.id, count(e.id) FILTER (WHERE e.side = 'D') AS d, count(e.id) FILTER (WHERE e.side = 'C') AS c
        FROM payments p LEFT JOIN ledger_entries e ON e.payment_id = p.id AND e.account LIKE 'bank_clearing:%'
        WHERE p.status = 'paid' GROUP BY p.id""")
    bad = [(r["id"], r["d"], r["c"]) for r in rows if r["d"] - r["c"] != 1]
    return Verdict("every paid payment is booked once in the ledger", not bad,
                   f"{len(rows)} paid payments checked against bank_clearing entries", bad)


async def ledger_balances(c: "Campaign") -> Verdict:
    unbalanced = await _rows(c.dsn("payments"), """
        SELECT transaction_id, sum(CASE side WHEN 'D' THEN amount_fen ELSE -amount_fen END) AS net
        FROM ledger_entries GROUP BY transaction_id
        HAVING sum(CASE side WHEN 'D' THEN amount_fen ELSE -amount_fen END) <> 0""")
    negative = await _rows(c.dsn("payments"), "SELECT code, balance_fen FROM ledger_accounts WHERE floor_zero AND balance_fen < 0")
    drift = await _rows(c.dsn("payments"), """
        SELECT a.code, a.balance_fen, coalesce(sum(CASE e.side WHEN 'D' THEN e.amount_fen ELSE -e.amount_fen END), 0) AS s
        FROM ledger_accounts a LEFT JOIN ledger_entries e ON e.account = a.code
        GROUP BY a.code, a.balance_fen
        HAVING a.balance_fen <> coalesce(sum(CASE e.side WHEN 'D' THEN e.amount_fen ELSE -e.amount_fen END), 0)""")
    n = (await _rows(c.dsn("payments"), "SELECT count(*) AS n FROM ledger_transactions"))[0]["n"]
    return Verdict("every ledger transaction balances, no reserve below zero, balance = sum of entries",
                   not unbalanced and not negative and not drift,
                   f"{n} transactions; {len(unbalanced)} unbalanced, {len(negative)} negative, {len(drift)} drifted",
                   [dict(r) for r in (list(unbalanced) + list(negative) + list(drift))])


async def nothing_paid_after_death_unflagged(c: "Campaign") -> Verdict:
    rows = await _rows(c.dsn("payments"), """
        SELECT p.id, p.person_id, p.month, p.paid_at, d.date_of_death
        FROM payments p JOIN deaths d ON d.person_id = p.person_id
        WHERE p.status = 'paid' AND (p.month > d.date_of_death OR (p.month IS NULL AND p.paid_at::date > d.date_of_death))
          AND NOT EXISTS (SELECT 1 FROM payment_recoveries r WHERE r.payment_id = p.id)""")
    deaths = (await _rows(c.dsn("payments"), "SELECT count(*) AS n FROM deaths"))[0]["n"]
    return Verdict("nothing paid after a recorded date of death stays unflagged", not rows,
                   f"{deaths} deaths recorded in payments (of {len(c.deaths_reported)} reported)", [dict(r) for r in rows])


async def deaths_reached_payments(c: "Campaign") -> Verdict:
    # payments records deaths by person key (shared/pii.py), the keyed hash of the reported number
    key = cipher_for(DATA_KEY).index
    got = {r["person_id"] for r in await _rows(c.dsn("payments"), "SELECT person_id FROM deaths")}
    missing = sorted(p for p in set(c.deaths_reported) if key(p) not in got)
    return Verdict("every reported death stopped payments", not missing,
                   f"{len(c.deaths_reported)} reported, {len(missing)} not seen by payments", missing)


async def outboxes_drained(c: "Campaign") -> Verdict:
    pending = {}
    for name in c.cluster.db_urls:
        n = (await _rows(c.dsn(name), "SELECT count(*) AS n FROM outbox WHERE sent_at IS NULL"))[0]["n"]
        if n:
            pending[name] = n
    return Verdict("every outbox is drained", not pending, f"unsent rows: {pending or 'none'}", list(pending.items()))


async def consumers_caught_up(c: "Campaign") -> Verdict:
    lag = await c.consumer_lag()
    behind = {k: v for k, v in lag.items() if v}
    return Verdict("every consumer group is caught up", not behind,
                   f"{len(lag)} (group, topic) pairs, lagging: {behind or 'none'}", list(behind.items()))


async def dead_letters_accounted(c: "Campaign") -> Verdict:
    unexplained = []
    total = 0
    for name in c.cluster.db_urls:
        for r in await _rows(c.dsn(name), "SELECT id, consumer, topic, payload, error FROM dead_letters"):
            total += 1
            if bytes(r["payload"]) not in c.poison_payloads:
                unexplained.append((name, r["consumer"], r["topic"], r["error"][:120]))
    return Verdict("every dead letter is an injected poison event", not unexplained,
                   f"{total} dead letters for {len(c.poison_payloads)} poison events injected", unexplained)


ALL = [one_case_per_application, paid_once_at_the_bank, booked_once, ledger_balances,
       nothing_paid_after_death_unflagged, deaths_reached_payments, outboxes_drained, consumers_caught_up,
       dead_letters_accounted]


async def check_all(c: "Campaign") -> list[Verdict]:
    return [await inv(c) for inv in ALL]
