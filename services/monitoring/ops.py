"""What the operators' dashboard shows besides indicators: reserve-fund alerts (P4) and this
service's own health (consumers, lag, outbox backlog, dead letters: M8 real-time sync)."""
from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Callable

import sqlalchemy as sa

from shared.auth import Principal, ensure_region, region_prefix
from shared.messaging.tables import dead_letters, inbox
from shared.money import format_yuan
from shared.runtime import ServiceRuntime

from services.monitoring.regions import within
from services.monitoring.models import comparison_files, reserve_alerts


class OpsService:
    def __init__(self, runtime: ServiceRuntime, clock: Callable[[], datetime]) -> None:
        self.runtime = runtime
        self.clock = clock

    async def fund_alerts(self, principal: Principal, region_code: str) -> dict[str, Any]:
        ensure_region(principal, region_code)
        ra = reserve_alerts
        prefix = region_prefix(region_code)
        latest = (sa.select(ra.c.township_code, ra.c.kind, sa.func.max(ra.c.observed_on).label("on"))
                  .where(within(ra.c.township_code, prefix)).group_by(ra.c.township_code, ra.c.kind)).subquery()
        async with self.runtime.session_factory() as s:
            rows = (await s.execute(
                sa.select(ra.c.township_code, ra.c.kind, sa.func.max(ra.c.amount).label("amount"),
                          sa.func.min(ra.c.since).label("since"), latest.c.on)
                .select_from(ra.join(latest, sa.and_(ra.c.township_code == latest.c.township_code,
                                                     ra.c.kind == latest.c.kind, ra.c.observed_on == latest.c.on)))
                .group_by(ra.c.township_code, ra.c.kind, latest.c.on)
                .order_by(ra.c.township_code, ra.c.kind))).all()
        totals: dict[str, Decimal] = {"idle_funds": Decimal(0), "allocation_booked_as_spent": Decimal(0)}
        items = []
        for r in rows:
            totals[r.kind] = totals.get(r.kind, Decimal(0)) + Decimal(r.amount)
            items.append({"township_code": r.township_code, "kind": r.kind, "amount": format_yuan(Decimal(r.amount)),
                          "since": r.since.isoformat(), "observed_on": r.on.isoformat()})
        return {"rule": "P4", "region_code": region_code, "alerts": items,
                "totals": {k: format_yuan(v) for k, v in totals.items()}}

    async def health(self) -> dict[str, Any]:
        rt = self.runtime
        now = self.clock()
        async with rt.session_factory() as s:
            unresolved = int(await s.scalar(sa.select(sa.func.count()).select_from(dead_letters)
                                            .where(dead_letters.c.resolved_at.is_(None))) or 0)
            recent = (await s.execute(sa.select(dead_letters.c.id, dead_letters.c.consumer, dead_letters.c.topic,
                                                dead_letters.c.type, dead_letters.c.error, dead_letters.c.created_at)
                                      .where(dead_letters.c.resolved_at.is_(None))
                                      .order_by(dead_letters.c.id.desc()).limit(10))).all()
            processed_hour = int(await s.scalar(sa.select(sa.func.count()).select_from(inbox)
                                                .where(inbox.c.processed_at >= now - timedelta(hours=1))) or 0)
            last_event = await s.scalar(sa.select(sa.func.max(inbox.c.processed_at)))
            last_file = (await s.execute(sa.select(comparison_files).order_by(comparison_files.c.started_at.desc())
                                         .limit(1))).mappings().first()
        backlog = await rt.relay.backlog()
        lag = [{"group": g, "topic": t, "lag": n} for (g, t), n in sorted(rt.bus.lag().items())]
        consumers = [{"group": c.group, "topics": c.topics, "handled": c.stats.handled,
                      "duplicates": c.stats.duplicates, "dead_lettered": c.stats.dead_lettered}
                     for c in rt.consumers]
        return {
            "service": rt.name, "as_of": now.isoformat(), "bus": type(rt.bus).__name__,
            "outbox_backlog": backlog, "relay_last_error": rt.relay.last_error,
            "consumer_lag": lag, "consumer_lag_total": sum(x["lag"] for x in lag), "consumers": consumers,
            "events_processed_last_hour": processed_hour,
            "last_event_processed_at": last_event.isoformat() if last_event else None,
            "dead_letters_unresolved": unresolved,
            "dead_letters_recent": [{"id": r.id, "consumer": r.consumer, "topic": r.topic, "type": r.type,
                                     "error": (r.error or "")[:300], "at": r.created_at.isoformat()} for r in recent],
            "last_comparison_file": None if last_file is None else {
                "id": last_file["id"], "kind": last_file["kind"], "status": last_file["status"],
                "rows_total": last_file["rows_total"], "rows_failed": last_file["rows_failed"],
                "warnings_raised": last_file["warnings_raised"],
                "finished_at": last_file["finished_at"].isoformat() if last_file["finished_at"] else None},
        }
