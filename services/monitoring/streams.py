"""Streaming readers for uploaded comparison files: a file part out of ``multipart/form-data``,
and CSV / JSONL records in batches — never the whole file in memory."""
from __future__ import annotations

import csv
import io
import re
from typing import Any, AsyncIterator

import orjson

from shared.errors import InvalidInput


class StreamTooLong(ValueError):
    """A line (record) is longer than the configured limit."""


# --- multipart/form-data --------------------------------------------------------------------

_BOUNDARY = re.compile(r'boundary="?([^";]+)"?', re.I)
_DISPOSITION = re.compile(rb'content-disposition:[^\r\n]*?\bname="([^"]*)"(?:[^\r\n]*?\bfilename="([^"]*)")?', re.I)


def multipart_boundary(content_type: str) -> bytes:
    m = _BOUNDARY.search(content_type or "")
    if not m:
        raise InvalidInput.field("Content-Type", "multipart/form-data needs a boundary")
    return m.group(1).encode("latin-1")


class MultipartFile:
    """The first part named ``file`` (or the first part with a filename) of a multipart body, streamed."""

    def __init__(self, chunks: AsyncIterator[bytes], boundary: bytes, *, max_header_bytes: int = 16384) -> None:
        self._chunks = chunks
        self._delim = b"\r\n--" + boundary
        self._max_header = max_header_bytes
        self.filename: str | None = None
        self.fields: dict[str, str] = {}

    async def __aiter__(self) -> AsyncIterator[bytes]:  # type: ignore[override]
        buf = b"\r\n"  # so the first delimiter looks like every other one
        it = self._chunks.__aiter__()
        eof = False

        async def more() -> bool:
            nonlocal buf, eof
            if eof:
                return False
            try:
                buf += await it.__anext__()
                return True
            except StopAsyncIteration:
                eof = True
                return False

        # preamble → first delimiter
        while (i := buf.find(self._delim)) < 0:
            if not await more():
                raise InvalidInput.field("file", "multipart body has no parts")
            buf = buf[-(len(self._delim) + 4096):] if len(buf) > 1 << 20 else buf
        buf = buf[i + len(self._delim):]
        while True:
            while len(buf) < 2 and await more():
                pass
            if buf.startswith(b"--"):
                raise InvalidInput.field("file", "multipart body has no part named 'file'")
            while (h := buf.find(b"\r\n\r\n")) < 0:
                if len(buf) > self._max_header or not await more():
                    raise InvalidInput.field("file", "malformed multipart part headers")
            headers, buf = buf[:h], buf[h + 4:]
            m = _DISPOSITION.search(headers)
            name = m.group(1).decode("utf-8", "replace") if m else ""
            filename = m.group(2).decode("utf-8", "replace") if m and m.group(2) is not None else None
            is_file = name == "file" or (filename is not None and name not in self.fields)
            if is_file:
                self.filename = filename
            value = bytearray()
            # stream the part's body up to the next delimiter, holding back a delimiter's length
            while True:
                j = buf.find(self._delim)
                if j >= 0:
                    part, buf = buf[:j], buf[j + len(self._delim):]
                    if is_file:
                        if part:
                            yield part
                        return
                    value += part
                    break
                keep = len(self._delim)
                if len(buf) > keep:
                    part, buf = buf[:-keep], buf[-keep:]
                    if is_file:
                        yield part
                    else:
                        value += part
                        if len(value) > 65536:
                            raise InvalidInput.field(name or "form", "form field too long")
                if not await more():
                    raise InvalidInput.field("file", "multipart body ends inside a part")
            self.fields[name] = value.decode("utf-8", "replace")


# --- records ------------------------------------------------------------------------------------

def _cut_point(buf: bytes | bytearray, quoted: bool) -> int:
    """Index just past the last newline that ends a record (outside CSV quotes), or -1."""
    end = buf.rfind(b"\n")
    if not quoted:
        return end + 1 if end >= 0 else -1
    while end >= 0:
        if buf.count(b'"', 0, end) % 2 == 0:
            return end + 1
        end = buf.rfind(b"\n", 0, end)
    return -1


async def blocks(chunks: AsyncIterator[bytes], *, quoted: bool, max_line_bytes: int) -> AsyncIterator[bytes]:
    """Byte blocks that each end at a record boundary (the last one may lack its newline)."""
    buf = bytearray()
    first = True
    async for chunk in chunks:
        if not chunk:
            continue
        buf += chunk
        if first and buf.startswith(b"\xef\xbb\xbf"):
            del buf[:3]
        first = False
        cut = _cut_point(buf, quoted)
        if cut > 0:
            yield bytes(buf[:cut])
            del buf[:cut]
        if len(buf) > max_line_bytes:
            raise StreamTooLong(f"a record is longer than {max_line_bytes} bytes")
    if buf.strip():
        yield bytes(buf)


def _decode(block: bytes) -> tuple[list[str], dict[int, str]]:
    """Lines of a block; lines that are not UTF-8 come back empty with their error."""
    try:
        return block.decode("utf-8").splitlines(keepends=True), {}
    except UnicodeDecodeError:
        lines, bad = [], {}
        for i, raw in enumerate(block.splitlines(keepends=True)):
            try:
                lines.append(raw.decode("utf-8"))
            except UnicodeDecodeError:
                lines.append("\n")
                bad[i] = "row is not valid UTF-8"
        return lines, bad


async def csv_rows(chunks: AsyncIterator[bytes], *, max_line_bytes: int
                   ) -> AsyncIterator[tuple[list[str], list[tuple[int, list[str] | str]]]]:
    """(header, [(row number, values | error message)]) per block; the header is row 1."""
    header: list[str] | None = None
    row_no = 0
    async for block in blocks(chunks, quoted=True, max_line_bytes=max_line_bytes):
        lines, bad = _decode(block)
        out: list[tuple[int, list[str] | str]] = []
        if bad:
            # rare: decode per line, report the bad ones, parse the rest line by line
            for i, line in enumerate(lines):
                row_no += 1
                if i in bad:
                    out.append((row_no, bad[i]))
                    continue
                values = next(csv.reader(io.StringIO(line)), [])
                if header is None:
                    header = [v.strip() for v in values]
                    continue
                if values:
                    out.append((row_no, values))
        else:
            reader = csv.reader(lines)
            for values in reader:
                if header is None:
                    row_no += 1
                    header = [v.strip() for v in values]
                    continue
                row_no += 1
                if values:
                    out.append((row_no, values))
        if header is None:
            continue
        yield header, out
    if header is None:
        raise InvalidInput.field("file", "the CSV file is empty (a header row naming the columns is required)")


async def jsonl_rows(chunks: AsyncIterator[bytes], *, max_line_bytes: int
                     ) -> AsyncIterator[list[tuple[int, Any]]]:
    """[(line number, object | error message)] per block; empty lines are skipped."""
    line_no = 0
    loads = orjson.loads
    async for block in blocks(chunks, quoted=False, max_line_bytes=max_line_bytes):
        out: list[tuple[int, Any]] = []
        for raw in block.split(b"\n"):
            line_no += 1
            if not raw.strip():
                continue
            try:
                out.append((line_no, loads(raw)))
            except orjson.JSONDecodeError as exc:
                out.append((line_no, f"not valid JSON: {str(exc)[:120]}"))
        line_no -= 1  # the block ended with a newline: its last split piece is not a line
        if not block.endswith(b"\n"):
            line_no += 1
        yield out
