"""The writes of a use case or of a run of events on applications, kept in memory and stored
set-based at the end: per application one UPDATE with its merged values, and one executemany
each for the timeline steps, the transfers and the channel feedback rows — on PostgreSQL all of
them in one statement.

Why collected rather than written as they come: a consumer batch of N CaseOpened/DecisionMade
events would otherwise cost 2–4 statements per event (each one built, compiled and sent); now
it costs one statement per kind of write for the whole run. The statements are built once here.
Rows keep the order they were recorded in, so serial ids (the timeline's order) come out as if
each event had been written on its own.
"""
from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db import by_columns
from shared.writes import RowSets

from services.intake.channel_feedback import INSERT_FEEDBACK
from services.intake.models import application_steps, applications, channel_feedback, transfers

# What the event handlers read of an application (the household and JSON columns stay unread).
EVENT_COLUMNS = ("id", "status", "program", "channel", "channel_ref", "region_code", "applicant_person_enc",
                 "case_id", "decision_id", "accepted_at", "stages_expected", "paid_count")
# Locked in key order, so two transactions locking overlapping sets wait instead of deadlocking.
LOCK_FOR_EVENTS = (sa.select(*(applications.c[c] for c in EVENT_COLUMNS))
                   .where(applications.c.id.in_(sa.bindparam("ids", expanding=True)))
                   .order_by(applications.c.id).with_for_update())
# No .values(): the SET clause is the columns each parameter set names.
_SET = applications.update().where(applications.c.id == sa.bindparam("application_key"))
_ADD_STEP = application_steps.insert()
_ADD_TRANSFER = transfers.insert()


class TimelineWrites:
    def __init__(self) -> None:
        self.values: dict[str, dict[str, Any]] = {}
        self.steps: list[dict[str, Any]] = []
        self.transfers: list[dict[str, Any]] = []
        self.feedback: list[dict[str, Any]] = []

    def update(self, app_id: str, values: Mapping[str, Any], steps: list[tuple[str, str | None]],
               at: datetime, actor: str) -> None:
        """A later update of the same application overrides the earlier one's columns, as a
        second UPDATE statement would."""
        if values:
            self.values.setdefault(app_id, {}).update(values)
        self.steps.extend({"application_id": app_id, "step": s, "at": at, "actor": actor, "detail": d}
                          for s, d in steps)

    def current(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """``row`` as read, with what this run has already changed on it: the next event of the
        same application sees the previous one's effect, as it would one transaction later."""
        return {**row, **self.values.get(row["id"], {})}

    async def flush(self, session: AsyncSession) -> None:
        if session.bind is not None and session.bind.dialect.name == "postgresql":
            # one statement for the whole run, whatever its size (shared/writes.py RowSets)
            rows = RowSets()
            for key, values in self.values.items():
                rows.update(applications, {"id": key}, values)
            for table, new in ((application_steps, self.steps), (transfers, self.transfers),
                               (channel_feedback, self.feedback)):
                for row in new:
                    rows.insert(table, row)
            await rows.execute(session)
            return
        for same in by_columns([{"application_key": k, **v} for k, v in self.values.items()]):
            await session.execute(_SET, same)
        if self.steps:
            await session.execute(_ADD_STEP, self.steps)
        if self.transfers:
            await session.execute(_ADD_TRANSFER, self.transfers)
        if self.feedback:
            await session.execute(INSERT_FEEDBACK, self.feedback)
