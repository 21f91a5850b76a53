"""Identity numbers at rest outside intake (issue 8): every service keeps a *person key*, never the
居民身份证号 itself.

* The person key is ``FieldCipher.index(person_id)``: the keyed hash (HMAC-SHA256, key derived
  from DATA_ENCRYPTION_KEY), 64 hex characters. It is deterministic, so every column, JSON blob,
  ledger account code and join that used the number uses the key instead, with the same
  equality semantics (the same person always has the same key within a service: monitoring's
  comparison joins partner records to the register on it). Services exchange numbers on their
  events, never keys, so each may run with its own DATA_ENCRYPTION_KEY. Changing a service's
  key changes all its keys: that needs a re-keying migration (not written yet).
* Where the number must be given back (a response to a role that may see it, a masked response,
  an event that carries it, a partner call), the service looks it up in its own
  ``person_vault`` table: one row per person, ``person_enc`` = AES-GCM of the number with
  ``person:<key>`` as associated data. The ciphertext is bound to its key: copied onto another
  person's row it does not decrypt, so a database writer without the key cannot make one
  person's records reveal another's number.

A hot path may keep a second, per-row copy instead (``seal_numbers``: eligibility's benefit
households), so a million-row job decrypts one value per changed row and looks nothing up.

Why a vault instead of a ciphertext beside every column: the number enters a service once (an
event, a partner record, an API path) but is stored in many rows and inside JSON (households,
decision traces, covered lists). One key everywhere keeps set-based SQL (payroll's INSERT …
SELECT, the comparison's joins) exactly as it was, and only the few places that show or send the
number pay for a decryption.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import sqlite

from shared.crypto import FieldCipher, cipher_for
from shared.writes import insert_ignore_returning

KEY_LENGTH = 64  # hex characters of the HMAC-SHA256 index
_KEY = re.compile(r"^[0-9a-f]{64}$")
_ID = re.compile(r"^[0-9]{17}[0-9Xx]$")
_CHUNK = 500  # keys per IN (…) look-up (SQLite's variable limit is far above; plans stay simple)


def vault_table(metadata: sa.MetaData) -> sa.Table:
    """The ``person_vault`` table of one service (each service owns its own copy)."""
    return sa.Table(
        "person_vault", metadata,
        sa.Column("person_key", sa.String(KEY_LENGTH), primary_key=True),
        sa.Column("person_enc", sa.String(128), nullable=False),
    )


def looks_like_key(value: Any) -> bool:
    return isinstance(value, str) and len(value) == KEY_LENGTH and _KEY.match(value) is not None


def looks_like_id(value: Any) -> bool:
    return isinstance(value, str) and len(value) == 18 and _ID.match(value) is not None


def swap(tree: Any, mapping: Mapping[str, str]) -> Any:
    """``tree`` (JSON-shaped: dicts, lists, strings …) with every string that is a key of
    ``mapping`` — dict keys included — replaced by its value. Other values are left as they are."""
    if isinstance(tree, str):
        return mapping.get(tree, tree)
    if isinstance(tree, dict):
        return {mapping.get(k, k) if isinstance(k, str) else k: swap(v, mapping) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return [swap(v, mapping) for v in tree]
    return tree


def strings_in(tree: Any, pick: Any) -> set[str]:
    """Every string in ``tree`` (dict keys included) for which ``pick(s)`` is true."""
    out: set[str] = set()
    stack = [tree]
    while stack:
        t = stack.pop()
        if isinstance(t, str):
            if pick(t):
                out.add(t)
        elif isinstance(t, dict):
            for k, v in t.items():
                if isinstance(k, str) and pick(k):
                    out.add(k)
                stack.append(v)
        elif isinstance(t, (list, tuple)):
            stack.extend(t)
    return out


class PersonVault:
    """A service's person keys and the encrypted numbers behind them."""

    def __init__(self, secret: str, table: sa.Table) -> None:
        self.cipher: FieldCipher = cipher_for(secret)
        self.table = table

    # -- keys (pure) -------------------------------------------------------------------------
    def key(self, person_id: str) -> str:
        return self.cipher.index(person_id)

    def seal(self, person_id: str) -> dict[str, str]:
        key = self.cipher.index(person_id)
        return {"person_key": key, "person_enc": self.cipher.encrypt(person_id, context=f"person:{key}")}

    def open(self, key: str, token: str) -> str:
        """The number (cryptography's InvalidTag for a wrong key or a ciphertext moved between rows)."""
        return self.cipher.decrypt(token, context=f"person:{key}")

    def seal_numbers(self, owner: str, numbers: Mapping[str, str]) -> str:
        """Several people's numbers (``{key: number}``) as one ciphertext bound to ``owner`` (a
        case id): for a hot path that reads it with its row instead of looking each up."""
        return self.cipher.encrypt(orjson.dumps(dict(numbers)).decode(), context=f"numbers:{owner}")

    def open_numbers(self, owner: str, token: str) -> dict[str, str]:
        numbers: dict[str, str] = orjson.loads(self.cipher.decrypt(token, context=f"numbers:{owner}"))
        return numbers

    def keyed(self, tree: Any) -> Any:
        """A JSON tree from an event or a request with every identity number replaced by its key."""
        return swap(tree, {pid: self.key(pid) for pid in strings_in(tree, looks_like_id)})

    # -- the vault (I/O on the caller's session, inside its transaction) ----------------------
    async def keep(self, session: Any, person_ids: Iterable[str], *, rows: Any = None) -> dict[str, str]:
        """Store every number not yet in the vault; returns number → key. ``rows``: the caller's
        ``RowSets`` (shared/writes.py): the numbers then go into its one statement, each sealed
        and left out there if already kept, instead of a look-up and an insert of their own."""
        mapping = {pid: self.key(pid) for pid in dict.fromkeys(person_ids)}
        if not mapping:
            return mapping
        if rows is not None:
            for pid in mapping:
                rows.insert(self.table, self.seal(pid), ignore_conflicts=True)
            return mapping
        known: set[str] = set()
        keys = list(mapping.values())
        for i in range(0, len(keys), _CHUNK):
            known.update((await session.execute(sa.select(self.table.c.person_key).where(
                self.table.c.person_key.in_(keys[i:i + _CHUNK])))).scalars())
        rows = [self.seal(pid) for pid, key in mapping.items() if key not in known]
        if rows:
            # a racing transaction that stored the same person first wrote the same number
            if session.bind.dialect.name == "postgresql":
                await insert_ignore_returning(session, self.table, rows)
            else:
                await session.execute(sqlite.insert(self.table).values(rows).on_conflict_do_nothing())
        return mapping

    async def reveal(self, session: Any, keys: Iterable[str]) -> dict[str, str]:
        """key → number for every key in the vault (unknown keys are left out)."""
        wanted = [k for k in dict.fromkeys(keys) if k]
        out: dict[str, str] = {}
        for i in range(0, len(wanted), _CHUNK):
            rows = (await session.execute(sa.select(self.table.c.person_key, self.table.c.person_enc).where(
                self.table.c.person_key.in_(wanted[i:i + _CHUNK])))).all()
            for key, token in rows:
                out[key] = self.open(key, token)
        return out

    async def reveal_one(self, session: Any, key: str) -> str:
        found = await self.reveal(session, [key])
        if key not in found:
            raise LookupError("person key not in this service's vault")
        return found[key]

    async def rows_with_numbers(self, session: Any, rows: Iterable[Mapping[str, Any]], *columns: str) -> list[dict[str, Any]]:
        """Stored rows as dicts with their person-key ``columns`` replaced by the numbers (in
        memory only: what the views are built from). One vault look-up for all of them."""
        rows = [dict(r) for r in rows]
        mapping = await self.reveal(session, {r[c] for r in rows for c in columns if r.get(c)})
        for r in rows:
            for c in columns:
                if r.get(c) in mapping:
                    r[c] = mapping[r[c]]
        return rows

    async def plain(self, session: Any, *trees: Any) -> list[Any]:
        """The trees (stored rows as dicts, JSON blobs …) with every person key replaced by the
        number, decrypted in memory only: what the views and events are built from."""
        keys: set[str] = set()
        for t in trees:
            keys |= strings_in(t, looks_like_key)
        mapping = await self.reveal(session, keys)
        return [swap(t, mapping) for t in trees]


# -- migrations: existing rows from numbers to keys and back (alembic, synchronous) --------------

class Columns:
    """Where one table keeps identity numbers: ``ids`` hold a number each, ``json`` hold them
    anywhere inside (values and dict keys), ``coded`` hold them as ``:``-separated parts of a
    code (ledger accounts ``payable:<number>``, dedupe keys ``death:<number>``)."""

    def __init__(self, table: str, pk: tuple[str, ...], *, ids: tuple[str, ...] = (), json: tuple[str, ...] = (),
                 coded: tuple[str, ...] = ()) -> None:
        self.name, self.pk, self.ids, self.json, self.coded = table, pk, ids, json, coded
        cols = [sa.column(c) for c in dict.fromkeys(pk + ids + coded)] + [sa.column(c, sa.JSON) for c in json]
        self.table = sa.table(table, *cols)

    @property
    def changed(self) -> tuple[str, ...]:
        return self.ids + self.json + self.coded


def widen(op: Any, columns: Mapping[str, tuple[str, ...]], length_from: int, length_to: int) -> None:
    """Person columns from VARCHAR(18) to the key's length (or back). PostgreSQL only: SQLite does
    not enforce VARCHAR lengths, and its batch mode would rebuild each table (and drop triggers
    such as payments' append-only ledger) for nothing; on PostgreSQL a longer varchar is a
    catalog change, not a table rewrite."""
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, cols in columns.items():
        for col in cols:
            op.alter_column(table, col, existing_type=sa.String(length_from), type_=sa.String(length_to))


def _convert_value(spec: Columns, col: str, value: Any, fn: Any, pick: Any) -> Any:
    if value is None:
        return None
    if col in spec.ids:
        return fn(value) if pick(value) else value
    if col in spec.coded:
        return ":".join(fn(part) if pick(part) else part for part in value.split(":"))
    return swap(value, {s: fn(s) for s in strings_in(value, pick)})


def convert_rows(bind: Any, secret: str, specs: Iterable[Columns], *, to_keys: bool, batch: int = 5000) -> int:
    """Rewrite every listed column of every row: numbers → keys (``to_keys``, the upgrade; the
    numbers go into ``person_vault``) or keys → numbers (the downgrade, from the vault). Returns
    the rows changed. Row by row in Python, batched ``executemany`` updates: a one-off job."""
    cipher = cipher_for(secret)
    vault = sa.table("person_vault", sa.column("person_key"), sa.column("person_enc"))
    plain: dict[str, str] = {}
    if not to_keys:
        for key, token in bind.execute(sa.select(vault.c.person_key, vault.c.person_enc)):
            plain[key] = cipher.decrypt(token, context=f"person:{key}")
    seen: dict[str, str] = {}

    def to_key(pid: str) -> str:
        key = seen.get(pid)
        if key is None:
            key = seen[pid] = cipher.index(pid)
        return key

    def to_plain(key: str) -> str:
        return plain.get(key, key)

    fn = to_key if to_keys else to_plain
    pick = looks_like_id if to_keys else (lambda s: s in plain)
    changed = 0
    for spec in specs:
        t = spec.table
        stmt = t.update().where(*(t.c[c] == sa.bindparam(f"_pk_{c}") for c in spec.pk)).values(
            {c: sa.bindparam(f"_v_{c}") for c in spec.changed})
        pending: list[dict[str, Any]] = []
        for row in bind.execute(sa.select(*(t.c[c] for c in spec.pk + spec.changed))).mappings().all():
            new = {c: _convert_value(spec, c, row[c], fn, pick) for c in spec.changed}
            if all(new[c] == row[c] for c in spec.changed):
                continue
            pending.append({**{f"_pk_{c}": row[c] for c in spec.pk}, **{f"_v_{c}": new[c] for c in spec.changed}})
            if len(pending) >= batch:
                bind.execute(stmt, pending)
                changed += len(pending)
                pending = []
        if pending:
            bind.execute(stmt, pending)
            changed += len(pending)
    if to_keys and seen:
        known = {k for (k,) in bind.execute(sa.select(vault.c.person_key))}
        rows = [{"person_key": key, "person_enc": cipher.encrypt(pid, context=f"person:{key}")}
                for pid, key in seen.items() if key not in known]
        for i in range(0, len(rows), batch):
            bind.execute(vault.insert(), rows[i:i + batch])
    return changed
