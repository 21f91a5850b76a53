"""The columnar path of M2 monthly CSV files: DuckDB (the C-speed column engine) splits, types and
checks the spooled file, so no Python runs per well-formed row.

Only what the fast path of ``RowParser.parse_csv`` accepts is decided here, with the same rules
(check digit, birth date, ISO dates, money, reference length) written over columns; every other
row — any problem, any other event type — is handed to ``RowParser.parse_csv`` itself, so the
records and the per-row error report are the row-by-row path's, row for row. A file whose
*structure* DuckDB cannot read exactly as Python's ``csv`` module would (a record over several
lines, blank lines, a wrong number of fields, invalid UTF-8, unusual line separators, a line over
the limit) is not read here at all: ``read`` returns None and the caller takes the row-by-row path.

Out of the good rows only the ones the comparison can act on leave DuckDB (the rules' filter:
deaths, medical expenses at or above the threshold, the other trigger types, poverty-monitoring
records), as CSV for one ``COPY`` into the transaction's staging table.
"""
from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any, Iterator

import duckdb

from services.monitoring.domain.rules import TRIGGER_RULES
from services.monitoring.domain.rows import Record

# GB 11643 weights of the 17 body digits, and the check character by weighted sum mod 11
_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK = "10X98765432"
FAST_TYPES = ("death", "medical_expense")
# the staging table's columns, in the order of the CSV handed to COPY
STAGE_COLUMNS = ("row_no", "type", "person_id", "occurred_on", "amount", "grade", "category", "region_code",
                 "monthly_pci", "labor_capacity", "looks_eligible", "reference", "match_key")
# str.splitlines (the row-by-row reader) also ends lines at these (and at a lone \r); DuckDB does not
_ODD_BREAKS = "[\\r\\x0b\\x0c\\x1c-\\x1e\\x{85}\\x{2028}\\x{2029}]"


class MatchKey:
    """The key a partner row is matched to the register on — the one place to change when the
    register is keyed by ``FieldCipher.index(person_id)`` instead of the plain ID number. ``sql``
    is the vectorised form (a DuckDB expression over a column), ``one`` the same for one value;
    the two must agree (tested)."""

    def __init__(self, index_key: bytes | None = None) -> None:
        self._key = index_key
        if index_key is not None:
            # HMAC-SHA256 (RFC 2104) spelt with DuckDB's sha256 over blobs: H(K^opad || H(K^ipad || m))
            k = index_key if len(index_key) <= 64 else hashlib.sha256(index_key).digest()
            k = k.ljust(64, b"\0")
            self._ipad = bytes(b ^ 0x36 for b in k).hex()
            self._opad = bytes(b ^ 0x5C for b in k).hex()

    def sql(self, column: str) -> str:
        if self._key is None:
            return column
        return (f"sha256(unhex('{self._opad}') || unhex(sha256(unhex('{self._ipad}') || encode({column}))))")

    def one(self, person_id: str) -> str:
        if self._key is None:
            return person_id
        return hmac.new(self._key, person_id.encode(), hashlib.sha256).hexdigest()


PLAIN = MatchKey()


def csv_field(value: Any) -> str:
    """One value as a CSV field for PostgreSQL's COPY (empty = NULL, so text is quoted when empty)."""
    if value is None:
        return ""
    text = str(value)
    if text == "" or "," in text or '"' in text or "\n" in text or "\r" in text:
        return '"' + text.replace('"', '""') + '"'
    return text


def count_lines(path: Path) -> int:
    """The number of lines of the file (a last line without its newline counts)."""
    lines = 0
    last = b""
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            lines += chunk.count(b"\n")
            last = chunk
    return lines + (1 if last and not last.endswith(b"\n") else 0)


@dataclass
class ColumnarResult:
    ok: int = 0          # good rows decided in DuckDB
    slow: int = 0        # rows left to RowParser
    staged: int = 0      # rows the comparison acts on (in the staging CSV)


class ColumnarCsv:
    """One uploaded CSV file in an in-memory DuckDB. Synchronous (DuckDB releases the GIL while it
    works): the caller runs it in a thread so the event loop keeps serving."""

    def __init__(self, path: Path, header: list[str], *, kind: str, allowed_types: frozenset[str] | None,
                 today: date, threshold: Decimal, key: MatchKey = PLAIN, threads: int = 2,
                 memory_limit: str = "1GB") -> None:
        self.path = path
        self.header = header
        self.kind = kind
        self.allowed = allowed_types
        self.today = today
        self.threshold = threshold
        self.key = key
        self.con = duckdb.connect(":memory:", config={"threads": threads, "memory_limit": memory_limit})

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> "ColumnarCsv":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def read(self, lines: int, max_line_bytes: int) -> bool:
        """Loads the data rows (every value as text, in file order); False if DuckDB cannot read the
        file strictly (a wrong number of fields, invalid UTF-8, a line over the limit), its record
        count is not its line count (a multi-line record, a blank line), or a value holds a character
        ``str.splitlines`` would break a line at."""
        cols = ", ".join(f"'c{i}': 'VARCHAR'" for i in range(len(self.header)))
        try:
            self.con.execute(
                f"CREATE TABLE raw AS SELECT * FROM read_csv(?, header = false, skip = 1, auto_detect = false, "
                f"columns = {{{cols}}}, delim = ',', quote = '\"', escape = '\"', strict_mode = true, "
                # no NULLs: an empty field is '' (as for the csv module), and a row with a field too
                # many or too few is an error, not padded or trimmed
                f"nullstr = '\\0null\\0', allow_quoted_nulls = false, encoding = 'utf-8', parallel = true, "
                f"max_line_size = {int(max_line_bytes)})",
                [str(self.path)])
        except duckdb.Error:
            return False
        every = ", ".join(f"c{i}" for i in range(len(self.header)))
        n, odd = self.con.execute(
            f"SELECT count(*), count(*) FILTER (WHERE regexp_matches(concat_ws(',', {every}), '{_ODD_BREAKS}')) "
            f"FROM raw").fetchone()  # type: ignore[misc]
        return bool(n == lines - 1 and odd == 0)

    def _col(self, name: str) -> str:
        """The column's text, '' when absent or empty (the csv module's view of an empty field)."""
        if name not in self.header:
            return "''"
        return f"coalesce(c{self.header.index(name)}, '')"

    def _fast_condition(self) -> str:
        """RowParser.parse_csv's fast path, over columns."""
        fast = [t for t in FAST_TYPES if self.allowed is None or t in self.allowed]
        if not fast:
            return "false"
        typ = self._col("type")
        if self.kind == "mixed":
            type_ok = f"{typ} IN ({', '.join(repr(t) for t in fast)})"
        elif self.kind in fast:
            type_ok = f"{typ} IN ('', '{self.kind}')"
        else:
            return "false"
        pid, on, ref = self._col("person_id"), self._col("occurred_on"), self._col("reference")
        digits = " + ".join(f"((n // {10 ** (16 - i)}) % 10) * {w}" for i, w in enumerate(_WEIGHTS))
        check = f"substr('{_CHECK}', CAST(({digits}) % 11 AS INTEGER) + 1, 1) = substr({pid}, 18, 1)"
        born = (f"try_cast(substr({pid}, 7, 4) || '-' || substr({pid}, 11, 2) || '-' || substr({pid}, 13, 2) AS DATE)"
                f" BETWEEN DATE '1900-01-01' AND DATE '{self.today.isoformat()}'")
        day = (f"regexp_full_match({on}, '[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}') AND substr({on}, 1, 4) <> '0000' "
               f"AND try_cast({on} AS DATE) <= DATE '{self.today.isoformat()}'")
        money = f"regexp_full_match({self._col('amount')}, '[0-9]{{1,13}}(\\.[0-9]{{1,2}})?')"
        typed = f"coalesce(nullif({typ}, ''), '{self.kind}')"
        return (f"{type_ok} AND length({pid}) = 18 AND regexp_full_match({pid}, '[0-9]{{17}}[0-9X]') "
                f"AND {check} AND {born} AND {day} AND length({ref}) <= 64 "
                f"AND ({typed} = 'death' OR {money})")

    def classify(self) -> ColumnarResult:
        """Marks the rows the fast path accepts; the others come back for RowParser."""
        pid = self._col("person_id")
        self.con.execute(
            f"CREATE TABLE v AS SELECT coalesce(({self._fast_condition()}), false) AS fast, * "
            f"FROM (SELECT rowid + 2 AS row_no, *, try_cast(substr({pid}, 1, 17) AS UBIGINT) AS n FROM raw)")
        out = ColumnarResult()
        out.ok, out.slow = self.con.execute(  # type: ignore[misc]
            "SELECT count(*) FILTER (WHERE fast), count(*) FILTER (WHERE NOT fast) FROM v").fetchone()
        return out

    def slow_rows(self, batch: int = 20_000) -> Iterator[list[tuple[int, list[str]]]]:
        """The rows for RowParser, (row number, values in header order), in file order and in
        batches: a file of nothing but such rows is never all in Python at once."""
        cols = ", ".join(f"coalesce(c{i}, '')" for i in range(len(self.header)))
        cur = self.con.cursor()
        cur.execute(f"SELECT row_no, {cols} FROM v WHERE NOT fast ORDER BY row_no")
        while rows := cur.fetchmany(batch):
            yield [(int(r[0]), list(r[1:])) for r in rows]
        cur.close()

    def export(self, keys: Path, decided: Path | None, out: ColumnarResult) -> None:
        """Stages (in DuckDB) the fast rows the rules act on, plus ``decided`` (staging lines of the
        rows RowParser accepted, from ``stage_lines``); writes the distinct keys to probe the
        register with, sorted bytewise (the index's "C" order: consecutive probes hit neighbouring pages)."""
        typ = f"coalesce(nullif({self._col('type')}, ''), '{self.kind}')"
        amount = f"nullif({self._col('amount')}, '')"
        relevant = f"({typ} = 'death' OR try_cast({amount} AS DECIMAL(18, 2)) >= {self.threshold})"
        pid = self._col("person_id")
        ref = f"nullif({self._col('reference')}, '')"
        self.con.execute(
            # person_id is the person key too: the number itself never reaches PostgreSQL
            f"CREATE TABLE stage AS SELECT row_no, {typ} AS type, mk AS person_id, "
            f"{self._col('occurred_on')} AS occurred_on, "
            f"CASE WHEN {typ} = 'medical_expense' THEN {amount} END AS amount, CAST(NULL AS VARCHAR) AS grade, "
            f"CAST(NULL AS VARCHAR) AS category, CAST(NULL AS VARCHAR) AS region_code, "
            f"CAST(NULL AS VARCHAR) AS monthly_pci, CAST(NULL AS VARCHAR) AS labor_capacity, 'f' AS looks_eligible, "
            f"{ref} AS reference, mk AS match_key FROM (SELECT *, {self.key.sql(pid)} AS mk FROM v "
            f"WHERE fast AND {relevant})")
        if decided is not None:
            cols = ", ".join(f"'{c}': '{'BIGINT' if c == 'row_no' else 'VARCHAR'}'" for c in STAGE_COLUMNS)
            self.con.execute(
                f"INSERT INTO stage SELECT {', '.join(STAGE_COLUMNS)} FROM read_csv(?, header = false, "
                f"auto_detect = false, columns = {{{cols}}}, delim = ',', quote = '\"', escape = '\"', "
                f"allow_quoted_nulls = false, strict_mode = true)", [str(decided)])
        self.con.execute(f"COPY (SELECT match_key FROM stage WHERE type <> 'poverty_monitoring' GROUP BY match_key "
                         f"ORDER BY match_key) TO '{keys}' (FORMAT csv, HEADER false)")
        out.staged = int(self.con.execute("SELECT count(*) FROM stage").fetchone()[0])  # type: ignore[index]

    def matched_records(self, found: Path, target: Path, *, file_id: str, partner_id: str, received_at: str) -> int:
        """``target``: the partner records to keep (``files.COPY_COLUMNS``, file order), given ``found``
        (the keys the register probe found): rows of people in the register, rows of people this
        file's poverty-monitoring rows may enter into it, and every poverty-monitoring row."""
        self.con.execute("CREATE TABLE found AS SELECT * FROM read_csv(?, header = false, auto_detect = false, "
                         "columns = {'match_key': 'VARCHAR'})", [str(found)])
        lit = lambda v: "'" + v.replace("'", "''") + "'"  # noqa: E731
        self.con.execute(
            f"COPY (SELECT {lit(file_id)}, row_no, 'file', {lit(partner_id)}, type, person_id, occurred_on, amount, "
            f"grade, category, region_code, monthly_pci, labor_capacity, looks_eligible, reference, {lit(received_at)} "
            f"FROM stage WHERE type = 'poverty_monitoring' OR match_key IN (SELECT match_key FROM found) "
            f"OR match_key IN (SELECT match_key FROM stage WHERE type = 'poverty_monitoring' AND category IS NOT NULL) "
            f"ORDER BY row_no) TO '{target}' (FORMAT csv, HEADER false)")
        return int(self.con.execute(
            "SELECT count(*) FROM stage WHERE type = 'poverty_monitoring' OR match_key IN (SELECT match_key FROM found) "
            "OR match_key IN (SELECT match_key FROM stage WHERE type = 'poverty_monitoring' AND category IS NOT NULL)"
        ).fetchone()[0])  # type: ignore[index]


def relevant(rec: Record, threshold: Decimal) -> bool:
    """The rules' filter for one record (the rows RowParser decided): what the comparison acts on."""
    if rec.type == "poverty_monitoring":
        return True
    if rec.type not in TRIGGER_RULES:
        return False
    return rec.type != "medical_expense" or Decimal(rec.amount) >= threshold  # type: ignore[arg-type]


def stage_lines(rows: Iterator[tuple[int, Record]], key: MatchKey, threshold: Decimal) -> Iterator[str]:
    """Staging CSV lines (STAGE_COLUMNS) for records RowParser decided."""
    for row_no, rec in rows:
        if not relevant(rec, threshold):
            continue
        person = key.one(rec.person_id)
        values = (row_no, rec.type, person, rec.occurred_on.isoformat(), rec.amount, rec.grade,
                  rec.category, rec.region_code, rec.monthly_per_capita_income, rec.labor_capacity,
                  "t" if rec.looks_eligible else "f", rec.reference, person)
        yield ",".join(csv_field(v) for v in values) + "\n"
