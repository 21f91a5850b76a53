"""Outbox, inbox and dead-letter tables. Every service database has these three
(each service's first migration creates them); the shared code queries them with these
Table objects, which describe the same tables in every database."""
from __future__ import annotations

import sqlalchemy as sa

from shared.db import BigIntPK, UTCDateTime

metadata = sa.MetaData()

outbox = sa.Table(
    "outbox", metadata,
    sa.Column("seq", BigIntPK, primary_key=True, autoincrement=True),
    sa.Column("event_id", sa.String(36), nullable=False, unique=True),
    sa.Column("topic", sa.String(200), nullable=False),
    sa.Column("key", sa.String(200), nullable=False),
    sa.Column("type", sa.String(200), nullable=False),
    sa.Column("payload", sa.LargeBinary, nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("sent_at", UTCDateTime(), nullable=True),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("last_error", sa.Text, nullable=True),
)
sa.Index("ix_outbox_pending", outbox.c.seq, sqlite_where=outbox.c.sent_at.is_(None),
         postgresql_where=outbox.c.sent_at.is_(None))

# PRIMARY KEY (consumer, event_id): inserted in the effect's transaction, so a redelivered
# event finds its row and changes nothing.
inbox = sa.Table(
    "inbox", metadata,
    sa.Column("consumer", sa.String(100), primary_key=True),
    sa.Column("event_id", sa.String(36), primary_key=True),
    sa.Column("type", sa.String(200), nullable=False),
    sa.Column("processed_at", UTCDateTime(), nullable=False),
)

dead_letters = sa.Table(
    "dead_letters", metadata,
    sa.Column("id", BigIntPK, primary_key=True, autoincrement=True),
    sa.Column("consumer", sa.String(100), nullable=False),
    sa.Column("topic", sa.String(200), nullable=False),
    sa.Column("event_id", sa.String(64), nullable=True),
    sa.Column("type", sa.String(200), nullable=True),
    sa.Column("payload", sa.LargeBinary, nullable=False),
    sa.Column("error", sa.Text, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("resolved_at", UTCDateTime(), nullable=True),
    sa.Column("resolution", sa.Text, nullable=True),
)


def create_messaging_tables(op: object) -> None:
    """Called from each service's first alembic revision with alembic's ``op``: the kernel's
    tables (outbox, inbox, dead letters, and the audit trail registered by shared.audit)."""
    import shared.audit  # noqa: F401  (registers audit_log on this metadata)
    metadata.create_all(bind=op.get_bind())  # type: ignore[attr-defined]


def drop_messaging_tables(op: object) -> None:
    import shared.audit  # noqa: F401
    metadata.drop_all(bind=op.get_bind())  # type: ignore[attr-defined]
