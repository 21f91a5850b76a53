"""M2 monthly comparison files (CSV or JSONL, hundreds of thousands of rows): every row validated
(a bad row is reported with its row number, field and message and never stops the others), then
compared with the register set-based, in one transaction.

Two readers, with the same records and the same error report:
* columnar (PostgreSQL, CSV): the upload is spooled to disk, DuckDB checks the well-formed rows over
  columns (``columnar.py``) and keeps the rows the rules act on; their distinct keys go to
  PostgreSQL (one COPY into a temporary table) for one register probe per person, the keys found
  come back, and only the matched rows (and every poverty-monitoring row) are stored as partner
  records (one COPY);
* row by row (JSONL, SQLite, or a CSV DuckDB cannot read exactly): streamed, parsed in Python,
  every good row stored (COPY on PostgreSQL), then compared.
The file itself is identified by its SHA-256 (kept with the file and in the audit trail)."""
from __future__ import annotations

import asyncio
import csv
import hashlib
import shutil
import tempfile
import uuid
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, AsyncIterator, Callable

import sqlalchemy as sa

from shared.auth import Principal, region_covers
from shared.calendar import to_shanghai_date
from shared.errors import Forbidden, InvalidInput, NotFound, ProblemError
from shared.events.monitoring import ComparisonCompleted
from shared.logging import get_logger
from shared.messaging.unit_of_work import UnitOfWork
from shared.pii import PersonVault
from shared.runtime import ServiceRuntime

from services.monitoring import audit
from services.monitoring.columnar import ColumnarCsv, ColumnarResult, MatchKey, count_lines, csv_field, stage_lines
from services.monitoring.comparison import KEYS_DDL, NO_JIT, ComparisonEngine
from services.monitoring.domain.reference import ReferenceLines
from services.monitoring.domain.rows import FILE_KINDS, Record, RowParser
from services.monitoring.models import comparison_file_errors, comparison_files, partner_records
from services.monitoring.partners import PartnerDirectory, PartnerService
from services.monitoring.streams import StreamTooLong, csv_rows, jsonl_rows

log = get_logger("monitoring.files")

COPY_COLUMNS = ("file_id", "row_no", "channel", "partner_id", "type", "person_id", "occurred_on", "amount", "grade",
                "category", "region_code", "monthly_pci", "labor_capacity", "looks_eligible", "reference",
                "received_at")


class _Hashing:
    """Passes chunks through while hashing and counting them (the signature covers the body);
    a file over ``max_bytes`` is refused (413) and nothing of it is kept."""

    def __init__(self, chunks: AsyncIterator[bytes], max_bytes: int) -> None:
        self.chunks = chunks
        self.max_bytes = max_bytes
        self.sha = hashlib.sha256()
        self.size = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:  # type: ignore[override]
        async for chunk in self.chunks:
            self.size += len(chunk)
            if self.size > self.max_bytes:
                raise ProblemError(f"comparison files are limited to {self.max_bytes} bytes", status=413,
                                   title="Payload too large")
            self.sha.update(chunk)
            yield chunk


async def _spool(chunks: AsyncIterator[bytes], path: Path) -> None:
    with path.open("wb") as fh:
        async for chunk in chunks:
            fh.write(chunk)


async def _file_chunks(path: Path, size: int = 1 << 16) -> AsyncIterator[bytes]:
    with path.open("rb") as fh:
        while chunk := fh.read(size):
            yield chunk


async def _one(data: bytes) -> AsyncIterator[bytes]:
    yield data


def _header(path: Path, max_line_bytes: int) -> list[str] | None:
    """The header row as the row-by-row reader sees it, or None for anything it would judge itself
    (no complete first line, not UTF-8, an empty file)."""
    with path.open("rb") as fh:
        first = fh.readline(max_line_bytes + 1)
    if not first.endswith(b"\n"):
        return None
    try:
        line = first.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError:
        return None
    if len(line.rstrip("\r\n").splitlines()) != 1:  # a break only str.splitlines knows: the row-by-row reader's call
        return None
    values = next(csv.reader([line]), [])
    return [v.strip() for v in values] or None


class _Sink:
    """Collects parsed rows of one file inside its transaction. On PostgreSQL the good rows become
    CSV text for one streamed ``COPY … FROM STDIN`` (the server stores a block while the next one
    is parsed); on SQLite they are inserted in batches. Errors are kept (up to a cap) and inserted
    after the rows."""

    def __init__(self, tx: UnitOfWork, file_id: str, partner_id: str, now: datetime, *, batch_rows: int,
                 max_errors: int, persons: PersonVault) -> None:
        self.tx = tx
        # rows are stored under the person key; the numbers of poverty-monitoring people (who may
        # enter the register or get a coverage-gap warning) are kept in the vault at the end
        self.key = persons.key
        self.persons = persons
        self.newcomers: list[str] = []
        self.file_id = file_id
        self.partner_id = partner_id
        self.now = now
        self.batch_rows = batch_rows
        self.max_errors = max_errors
        self.pg = tx.session.bind.dialect.name == "postgresql"
        self.rows: list[tuple[Any, ...]] = []
        self.lines: list[str] = []
        # the columns every row of this file shares, as CSV text
        self._head = f"{csv_field(file_id)},"
        self._mid = f",file,{csv_field(partner_id)},"
        self._tail = f",{now.isoformat()}\n"
        self.errors: list[dict[str, Any]] = []
        self.ok = self.failed = self.errors_stored = 0
        self._iso: dict[Any, str] = {}

    def add(self, row_no: int, rec: Record) -> None:
        self.ok += 1
        person = self.key(rec.person_id)
        if rec.type == "poverty_monitoring":
            self.newcomers.append(rec.person_id)
        if self.pg:
            ref = rec.reference
            day = self._iso.get(rec.occurred_on)
            if day is None:
                day = self._iso[rec.occurred_on] = rec.occurred_on.isoformat()
            self.lines.append(
                f"{self._head}{row_no}{self._mid}{rec.type},{person},{day},"
                f"{'' if rec.amount is None else rec.amount},{'' if rec.grade is None else rec.grade},"
                f"{rec.category or ''},{rec.region_code or ''},"
                f"{'' if rec.monthly_per_capita_income is None else rec.monthly_per_capita_income},"
                f"{rec.labor_capacity or ''},{'t' if rec.looks_eligible else 'f'},"
                f"{'' if ref is None else csv_field(ref)}{self._tail}")
        else:
            amount = rec.amount if rec.amount is None or isinstance(rec.amount, Decimal) else Decimal(rec.amount)
            self.rows.append((self.file_id, row_no, "file", self.partner_id, rec.type, person, rec.occurred_on,
                              amount, rec.grade, rec.category, rec.region_code, rec.monthly_per_capita_income,
                              rec.labor_capacity, rec.looks_eligible, rec.reference, self.now))

    def fail(self, row_no: int, problems: list[tuple[str, str]]) -> None:
        self.failed += 1
        for field, message in problems:
            if self.errors_stored + len(self.errors) < self.max_errors:
                self.errors.append({"file_id": self.file_id, "row_no": row_no, "field": field[:64],
                                    "message": message[:300]})

    def take_csv(self) -> bytes:
        data = "".join(self.lines).encode()
        self.lines.clear()
        return data

    async def flush_rows(self) -> None:
        if self.rows:
            rows, self.rows = self.rows, []
            await self.tx.session.execute(partner_records.insert(), [dict(zip(COPY_COLUMNS, r)) for r in rows])

    async def flush_errors(self) -> None:
        if self.errors:
            errors, self.errors = self.errors, []
            await self.tx.session.execute(comparison_file_errors.insert(), errors)
            self.errors_stored += len(errors)


class ComparisonFileService:
    def __init__(self, runtime: ServiceRuntime, engine: ComparisonEngine, partners: PartnerService,
                 directory: PartnerDirectory, reference_lines: ReferenceLines, *, clock: Callable[[], datetime],
                 batch_rows: int, max_errors: int, max_line_bytes: int, max_file_bytes: int,
                 columnar: bool = True, spool_dir: str | None = None, duckdb_threads: int = 2,
                 duckdb_memory: str = "1GB", medical_threshold: Decimal = Decimal("20000.00")) -> None:
        self.runtime = runtime
        self.columnar = columnar
        self.spool_dir = spool_dir
        self.duckdb_threads = duckdb_threads
        self.duckdb_memory = duckdb_memory
        self.threshold = medical_threshold
        # the register lookup key of a partner row: the person key (shared/pii.py), spelt in DuckDB
        self.match_key = MatchKey(engine.persons.cipher.index_key)
        self.engine = engine
        self.partners = partners
        self.directory = directory
        self.reference_lines = reference_lines
        self.clock = clock
        self.batch_rows = batch_rows
        self.max_errors = max_errors
        self.max_line_bytes = max_line_bytes
        self.max_file_bytes = max_file_bytes

    async def upload(self, principal: Principal, *, kind: str, fmt: str, partner_id: str | None,
                     filename: str | None, chunks: AsyncIterator[bytes], headers: dict[str, str]) -> dict[str, Any]:
        """Processes a whole file in one transaction: all its good rows and their warnings, or nothing."""
        if kind not in FILE_KINDS:
            raise InvalidInput.field("kind", f"must be one of {', '.join(FILE_KINDS)}")
        if fmt not in ("csv", "jsonl"):
            raise InvalidInput.field("format", "must be csv or jsonl")
        nonce = None
        if principal.role == "partner_system":
            # identity, key, freshness now; the body's digest once the stream has been read
            partner_id, nonce = self.partners.authenticate(principal, headers, None)
        elif not partner_id:
            raise InvalidInput.field("partner_id", "say which partner department the file came from")
        if partner_id not in self.directory.types:
            raise InvalidInput.field("partner_id", f"unknown partner {partner_id}")
        owned = self.directory.types_of(partner_id)
        if kind != "mixed" and kind not in owned:
            raise Forbidden(f"partner {partner_id} may not report {kind} events")
        now = self.clock()
        today = to_shanghai_date(now)
        parser = RowParser(kind, today=today, reference=self.reference_lines, allowed_types=owned)
        file_id = str(uuid.uuid4())
        hashed = _Hashing(chunks, self.max_file_bytes)
        columnar = fmt == "csv" and self.columnar and self.runtime.engine.dialect.name == "postgresql"
        spool: Path | None = None
        try:
            source: Any = hashed
            if columnar:
                # the whole upload on disk before the transaction opens (DuckDB reads files; a 413 keeps nothing)
                spool = Path(tempfile.mkdtemp(prefix="comparison-", dir=self.spool_dir))
                await _spool(hashed, spool / "upload.csv")
                source = _file_chunks(spool / "upload.csv")
            async with self.runtime.uow() as tx:
                await tx.session.execute(comparison_files.insert().values(
                    id=file_id, kind=kind, format=fmt, filename=(filename or "")[:200] or None, partner_id=partner_id,
                    uploaded_by=principal.sub, uploaded_by_role=principal.role, region_code=principal.region,
                    status="processing", started_at=now))
                sink = _Sink(tx, file_id, partner_id, now, batch_rows=self.batch_rows, max_errors=self.max_errors,
                             persons=self.engine.persons)
                matched = spool is not None and await self._columnar(tx, parser, spool, sink, file_id, partner_id, now)
                if not matched:
                    await self._row_by_row(tx, fmt, parser, source, sink)
                await sink.flush_errors()
                await self.engine.persons.keep(tx.session, sink.newcomers)
                if nonce is not None:
                    self.partners.authenticate(principal, headers, hashed.sha.hexdigest())
                    await self.partners.consume_nonce(tx, partner_id, nonce, now)
                result = await self.engine.run(tx, partner_records.c.file_id == file_id, batch=f"f:{file_id}",
                                               now=now, source=partner_id, warning_events=False, matched=matched)
                values = await self._finish(tx, principal, file_id, kind, sink, result, hashed)
        finally:
            if spool is not None:
                shutil.rmtree(spool, ignore_errors=True)
        log.info("comparison_file_processed", file_id=file_id, kind=kind, rows=values["rows_total"],
                 failed=sink.failed, warnings=result.warnings_raised, columnar=matched,
                 seconds=(values["finished_at"] - now).total_seconds())
        return await self.get(file_id, principal)

    async def _finish(self, tx: UnitOfWork, principal: Principal, file_id: str, kind: str, sink: "_Sink",
                      result: Any, hashed: _Hashing) -> dict[str, Any]:
        partner_id = sink.partner_id
        finished = self.clock()
        values = {"status": "completed", "rows_total": sink.ok + sink.failed, "rows_ok": sink.ok,
                  "rows_failed": sink.failed, "errors_stored": sink.errors_stored,
                  "warnings_raised": result.warnings_raised, "deaths_detected": result.deaths_detected,
                  "register_entries": result.register_entries, "size_bytes": hashed.size,
                  "sha256": hashed.sha.hexdigest(), "finished_at": finished}
        await tx.session.execute(comparison_files.update().where(comparison_files.c.id == file_id).values(**values))
        await audit.record(tx.session, principal, "comparison_file.processed", "comparison_file", file_id,
                           {"kind": kind, "partner_id": partner_id, "sha256": values["sha256"],
                            "rows_ok": sink.ok, "rows_failed": sink.failed,
                            "warnings_raised": result.warnings_raised, "deaths_detected": result.deaths_detected})
        tx.emit(ComparisonCompleted(file_id=file_id, kind=kind, rows_total=values["rows_total"], rows_ok=sink.ok,
                                    rows_failed=sink.failed, warnings_raised=result.warnings_raised,
                                    deaths_detected=result.deaths_detected, completed_at=finished),
                subject=file_id)
        return values

    async def _row_by_row(self, tx: UnitOfWork, fmt: str, parser: RowParser, source: Any, sink: "_Sink") -> None:
        blocks = (self._read_csv if fmt == "csv" else self._read_jsonl)(parser, source, sink)
        try:
            if sink.pg:
                await self._copy(tx, blocks, sink)
            else:
                async for _ in blocks:
                    if len(sink.rows) >= self.batch_rows:
                        await sink.flush_rows()
                await sink.flush_rows()
        except StreamTooLong as exc:
            raise InvalidInput.field("file", str(exc)) from None

    async def _columnar(self, tx: UnitOfWork, parser: RowParser, spool: Path, sink: "_Sink", file_id: str,
                        partner_id: str, now: datetime) -> bool:
        """The columnar reader (module docstring); False, having stored nothing, if this file needs
        the row-by-row reader (its structure, or a header the row-by-row reader reports on)."""
        upload, keys, found, records = (spool / n for n in ("upload.csv", "keys.csv", "found.csv", "records.csv"))
        header = _header(upload, self.max_line_bytes)
        if header is None or parser.header_problems(header):
            return False
        lines = await asyncio.to_thread(count_lines, upload)

        col = ColumnarCsv(upload, header, kind=parser.kind, allowed_types=parser.allowed_types, today=parser.today,
                          threshold=self.threshold, key=self.match_key, threads=self.duckdb_threads,
                          memory_limit=self.duckdb_memory)
        try:
            def read() -> ColumnarResult | None:
                return col.classify() if col.read(lines, self.max_line_bytes) else None

            out = await asyncio.to_thread(read)
            if out is None:
                return False
            sink.ok += out.ok
            extra = None
            if out.slow:
                # rows off the fast path: RowParser decides each, as on the row-by-row path
                parser.use_header(header)
                extra = spool / "decided.csv"
                batches = col.slow_rows()
                with extra.open("w", encoding="utf-8") as fh:
                    while (rows := await asyncio.to_thread(next, batches, None)) is not None:
                        decided = []
                        for row_no, values in rows:
                            rec = parser.parse_csv(values)
                            if rec.__class__ is list:
                                sink.fail(row_no, rec)  # type: ignore[arg-type]
                            else:
                                decided.append((row_no, rec))
                                if rec.type == "poverty_monitoring":  # (never a fast-path type) kept in the vault
                                    sink.newcomers.append(rec.person_id)
                        sink.ok += len(decided)
                        fh.writelines(stage_lines(iter(decided), self.match_key, self.threshold))
            await asyncio.to_thread(col.export, keys, extra, out)
            # the register probe, then only the rows it matched (and the M1/M4 ones) become records
            await tx.session.execute(sa.text(NO_JIT))
            await tx.session.execute(sa.text(KEYS_DDL))
            conn = await tx.session.connection()
            raw = (await conn.get_raw_connection()).driver_connection
            await raw.copy_to_table("cmp_keys", source=str(keys), format="csv")  # type: ignore[union-attr]
            await self.engine.probe_register(tx.session)
            await raw.copy_from_query("SELECT match_key FROM cmp_facts", output=str(found),  # type: ignore[union-attr]
                                      format="csv")
            await asyncio.to_thread(col.matched_records, found, records, file_id=file_id, partner_id=partner_id,
                                    received_at=now.isoformat())
            await raw.copy_to_table("partner_records", source=str(records),  # type: ignore[union-attr]
                                    columns=list(COPY_COLUMNS), format="csv")
        finally:
            col.close()
        return True

    @staticmethod
    async def _copy(tx: UnitOfWork, blocks: AsyncIterator[None], sink: _Sink) -> None:
        """One COPY for the whole file, fed block by block as the upload is parsed."""

        async def source() -> AsyncIterator[bytes]:
            async for _ in blocks:
                if sink.lines:
                    yield sink.take_csv()

        conn = await tx.session.connection()
        raw = await conn.get_raw_connection()
        await raw.driver_connection.copy_to_table(  # type: ignore[union-attr]
            "partner_records", source=source(), columns=list(COPY_COLUMNS), format="csv")

    async def _read_csv(self, parser: RowParser, chunks: Any, sink: _Sink) -> AsyncIterator[None]:
        checked = False
        width = 0
        async for header, rows in csv_rows(chunks, max_line_bytes=self.max_line_bytes):
            if not checked:
                problems = parser.header_problems(header)
                if problems:
                    raise InvalidInput("; ".join(f"{c}: {m}" for c, m in problems),
                                       errors=[{"field": f"columns.{c}", "message": m} for c, m in problems])
                parser.use_header(header)
                width = len(header)
                checked = True
            parse, add, fail = parser.parse_csv, sink.add, sink.fail
            for row_no, values in rows:
                if isinstance(values, str):
                    fail(row_no, [("row", values)])
                elif len(values) != width:
                    fail(row_no, [("row", f"has {len(values)} fields, the header has {width}")])
                else:
                    rec = parse(values)  # type: ignore[arg-type]
                    if rec.__class__ is list:
                        fail(row_no, rec)  # type: ignore[arg-type]
                    else:
                        add(row_no, rec)  # type: ignore[arg-type]
            yield None

    async def _read_jsonl(self, parser: RowParser, chunks: Any, sink: _Sink) -> AsyncIterator[None]:
        parse = parser.parse_json
        async for rows in jsonl_rows(chunks, max_line_bytes=self.max_line_bytes):
            for row_no, obj in rows:
                if isinstance(obj, str):
                    sink.fail(row_no, [("row", obj)])
                    continue
                rec = parse(obj)
                if isinstance(rec, list):
                    sink.fail(row_no, rec)
                else:
                    sink.add(row_no, rec)
            yield None

    # -- reads ------------------------------------------------------------------------------
    async def get(self, file_id: str, principal: Principal) -> dict[str, Any]:
        async with self.runtime.session_factory() as s:
            row = (await s.execute(sa.select(comparison_files).where(comparison_files.c.id == file_id))).mappings().first()
        if row is None or not self._visible(row, principal):
            raise NotFound(f"comparison file {file_id} not found")
        out = {k: row[k] for k in ("id", "kind", "format", "filename", "partner_id", "status", "rows_total", "rows_ok",
                                   "rows_failed", "errors_stored", "warnings_raised", "deaths_detected",
                                   "register_entries", "size_bytes", "sha256", "error")}
        out["uploaded_by"] = row["uploaded_by"]
        out["started_at"] = row["started_at"].isoformat()
        out["finished_at"] = row["finished_at"].isoformat() if row["finished_at"] else None
        out["seconds"] = ((row["finished_at"] - row["started_at"]).total_seconds() if row["finished_at"] else None)
        out["errors_url"] = f"/v1/comparison-files/{file_id}/errors"
        return out

    async def errors(self, file_id: str, principal: Principal, *, after_row: int, limit: int) -> dict[str, Any]:
        await self.get(file_id, principal)
        e = comparison_file_errors
        async with self.runtime.session_factory() as s:
            rows = (await s.execute(sa.select(e.c.id, e.c.row_no, e.c.field, e.c.message)
                                    .where(e.c.file_id == file_id, e.c.id > after_row)
                                    .order_by(e.c.id).limit(limit))).all()
        return {"file_id": file_id,
                "errors": [{"row": r.row_no, "field": r.field, "message": r.message} for r in rows],
                "next_after": rows[-1].id if len(rows) == limit else None}

    @staticmethod
    def _visible(row: Any, principal: Principal) -> bool:
        if principal.role == "partner_system":
            return bool(row["partner_id"] == principal.sub)
        return region_covers(principal.region, row["region_code"]) or principal.sub == row["uploaded_by"]
