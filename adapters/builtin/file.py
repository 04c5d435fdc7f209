"""JSON-lines files: ``file:///abs/path.jsonl`` or ``file://relative/path.jsonl`` (from the cwd).

The source tails the file: each ``read_batch`` returns the complete lines that appeared
since the last one (a last line without its newline waits until it is finished). Its
position is the byte offset just after the last complete line returned. Blank lines are
skipped; a line that is not JSON comes back as a :class:`RejectedRecord`. A file that does
not exist yet is waited for; a file that shrank below the offset (truncated) is read again
from the start, with a warning; a file replaced by a new one (rotation) is followed once
the old one is read to its end. Config ``start``: ``"beginning"`` (default) or ``"end"``
(skip what is there when opened without a position).

The sink appends one compact JSON document per line. ``bytes`` values are written as
base64 strings (standard alphabet). Each batch is handed to the OS as it is written;
``flush()`` (on checkpoint epochs) also fsyncs (config ``fsync: false`` skips that). Parent
directories are created. Each checkpoint records the file's length at the epoch it covers
(``checkpoint_state``); a DAG restarting from that checkpoint cuts the file back to it before
the replay writes on, so every line is written once (SPEC §12) — provided this DAG is the
file's only writer. A crash before the first checkpoint cannot be undone that way (there is
no length recorded yet): those lines may be written twice. The seed's ``publish_interval``
and ``batch_size`` are accepted and change nothing. With ``format: "avro"`` and ``avro_schema`` the file is an Avro
container instead (:mod:`adapters.builtin.avrofile`).

Usage::

    sink = FileSink("file:///tmp/out.jsonl", {}); sink.open()
    sink.write_batch([{"a": 1}]); sink.flush()
    src = FileSource("file:///tmp/out.jsonl", {}); src.open(None)
    src.read_batch(100, timeout=0.5)     # [{'a': 1}]
    src.position()                       # 8 (bytes), give it to open() to resume
"""

from __future__ import annotations

import base64
import json
import logging
import os
import time
from collections.abc import Mapping
from typing import IO, Any

from adapters.base import CLOSED, CONNECTED, Adapter, ParsedUri, RejectedRecord, Sink, Source, parse_uri
from adapters.builtin.avrofile import AvroFileSink, AvroFileSource

log = logging.getLogger(__name__)

POLL_INTERVAL = 0.02  # seconds between looks at a file that has nothing new
CHUNK = 1 << 20


def file_path(parsed: ParsedUri) -> str:
    """The filesystem path a ``file://`` URI names (relative ones against the cwd).

    >>> from adapters.base import parse_uri
    >>> file_path(parse_uri("file:///tmp/x.jsonl"))
    '/tmp/x.jsonl'
    """
    if not parsed.body.strip("/"):
        raise ValueError(f"file URI {parsed.raw!r} has no path")
    return os.path.abspath(parsed.body)


def check_file_uri(parsed: ParsedUri) -> str | None:
    return None if parsed.body.strip("/") else f"file URI {parsed.raw!r} has no path (use file:///abs/path.jsonl)"


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    raise TypeError(f"value of type {type(value).__name__} is not JSON serializable")


def dumps_line(record: Any) -> str:
    """One record as a compact JSON line (with its newline); bytes become base64 strings.

    >>> dumps_line({"k": b"hi"})
    '{"k":"aGk="}\\n'
    """
    return json.dumps(record, separators=(",", ":"), default=_json_default) + "\n"


class FileSource(Source):
    """Tails a JSON-lines file; position = byte offset after the last line returned."""

    def __init__(self, uri: str, config: Mapping[str, Any]) -> None:
        super().__init__(uri, config)
        self.path = file_path(self.parsed)
        self.start = str(self.config.get("start", "beginning"))
        if self.start not in ("beginning", "end"):
            raise ValueError(f"file source 'start' must be 'beginning' or 'end', not {self.start!r}")
        self.committed: int | None = None
        self._fh: IO[bytes] | None = None
        self._buf = bytearray()  # bytes read from the file past self._offset
        self._offset = 0
        self._wanted: int | None = None  # where to start once the file exists

    def open(self, position: Any | None) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        self._offset = 0
        self._buf.clear()
        if isinstance(position, int) and position >= 0:
            self._wanted = position
        else:
            self._wanted = -1 if self.start == "end" else 0
        self.status = CONNECTED
        if not self._ensure_open() and self._wanted == -1:
            self._wanted = 0  # the file does not exist yet: all of it will be new

    def _ensure_open(self) -> bool:
        if self._fh is not None:
            return True
        try:
            fh = open(self.path, "rb")  # noqa: SIM115 - kept open while tailing
        except (FileNotFoundError, NotADirectoryError):
            return False
        size = os.fstat(fh.fileno()).st_size
        wanted = size if self._wanted == -1 else (self._wanted or 0)
        if wanted > size:
            log.warning(
                "%s: file is shorter (%d) than the saved offset %d; reading it from the start",
                self.path,
                size,
                wanted,
            )
            wanted = 0
        fh.seek(wanted)
        self._fh, self._offset, self._wanted = fh, wanted, None
        self._buf.clear()
        return True

    def _check_file(self) -> None:
        """Restart from 0 after truncation; follow a rotated file once the old one is drained."""
        assert self._fh is not None
        read_pos = self._offset + len(self._buf)
        if os.fstat(self._fh.fileno()).st_size < read_pos:
            log.warning(
                "%s: file was truncated (size < offset %d); reading it from the start", self.path, read_pos
            )
            self._fh.seek(0)
            self._offset = 0
            self._buf.clear()
            return
        try:
            same = os.path.samestat(os.stat(self.path), os.fstat(self._fh.fileno()))
        except FileNotFoundError:
            return  # removed: keep what we have, wait for a new file
        if same:
            return
        more = self._fh.read(1)
        if more:
            self._buf += more  # the old file still has data: finish it first
        else:
            log.info("%s: file was replaced; following the new one", self.path)
            self._fh.close()
            self._fh, self._wanted = None, 0
            self._buf.clear()
            self._ensure_open()

    def _take(self, max_records: int) -> list[Any]:
        assert self._fh is not None
        out: list[Any] = []
        buf, i = self._buf, 0
        while len(out) < max_records:
            nl = buf.find(b"\n", i)
            if nl < 0:
                del buf[:i]
                i = 0
                chunk = self._fh.read(CHUNK)
                if not chunk:
                    break
                buf += chunk
                continue
            line = bytes(buf[i:nl])
            i = nl + 1
            self._offset += len(line) + 1
            item = self._parse(line)
            if item is not _BLANK:
                out.append(item)
        del buf[:i]
        return out

    @staticmethod
    def _parse(line: bytes) -> Any:
        if not line.strip():
            return _BLANK
        try:
            return json.loads(line)
        except (UnicodeDecodeError, ValueError) as exc:
            return RejectedRecord(raw=line.decode("utf-8", "replace").rstrip("\r"), reason=f"not JSON: {exc}")

    def read_batch(self, max_records: int, timeout: float) -> list[Any]:
        if self.status == CLOSED:
            raise RuntimeError(f"{self!r} is not open")
        deadline = time.monotonic() + max(0.0, timeout)
        while True:
            if self._ensure_open():
                self._check_file()
                out = self._take(max_records)
                if out:
                    return out
            left = deadline - time.monotonic()
            if left <= 0:
                return []
            time.sleep(min(POLL_INTERVAL, left))

    def position(self) -> int:
        if self._fh is None and self._wanted is not None and self._wanted >= 0:
            return self._wanted  # the file has not appeared yet
        return self._offset

    def commit(self, position: Any) -> None:
        self.committed = position

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
        self._fh = None
        self._buf.clear()
        self.status = CLOSED


_BLANK = object()


class FileSink(Sink):
    """Appends records as JSON lines; ``flush()`` = flush + fsync (config ``fsync: false`` skips it)."""

    def __init__(self, uri: str, config: Mapping[str, Any]) -> None:
        super().__init__(uri, config)
        self.path = file_path(self.parsed)
        self.fsync = bool(self.config.get("fsync", True))
        self._fh: IO[str] | None = None
        self._resume_length: int | None = None  # the length the checkpoint restarted from recorded

    def resume_from(self, state: Any) -> None:
        """Remember the file's length at the checkpoint; ``open`` cuts the file back to it."""
        if isinstance(state, dict) and isinstance(state.get("length"), int) and state["length"] >= 0:
            self._resume_length = state["length"]

    def checkpoint_state(self) -> dict[str, int] | None:
        """The file's length now (asked after the flush of a checkpoint epoch): what ``resume_from`` gets."""
        if self._fh is None:
            return None
        return {"length": os.fstat(self._fh.fileno()).st_size}

    def open(self) -> None:
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        if self._resume_length is not None:
            self._cut_back(self._resume_length)
        self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - held until close()
        self.status = CONNECTED

    def _cut_back(self, length: int) -> None:
        """Drop what was written after the checkpoint (the replay writes it again), once."""
        self._resume_length = None
        try:
            size = os.stat(self.path).st_size
        except FileNotFoundError:
            log.warning("%s: the file the checkpoint recorded (%d bytes) is gone; writing a new one", self.path,
                        length)
            return
        if size < length:
            log.warning("%s: the file is shorter (%d bytes) than the checkpoint recorded (%d); appending to it",
                        self.path, size, length)
        elif size > length:
            log.info("%s: cutting the file back from %d to %d bytes, its length at the checkpoint", self.path,
                     size, length)
            os.truncate(self.path, length)

    def write_batch(self, records: list[dict]) -> None:
        if self._fh is None:
            raise RuntimeError(f"{self!r} is not open")
        data = "".join(dumps_line(r) for r in records)  # encode all first: a bad record writes nothing
        self._fh.write(data)
        self._fh.flush()  # accepted = handed to the OS, visible to readers; flush() also fsyncs

    def flush(self) -> None:
        if self._fh is None:
            return
        self._fh.flush()
        if self.fsync:
            os.fsync(self._fh.fileno())

    def close(self) -> None:
        if self._fh is not None:
            try:
                self.flush()
            finally:
                self._fh.close()
                self._fh = None
        self.status = CLOSED


# The seed's publisher keys ``publish_interval`` and ``batch_size`` are accepted so its DAG files run
# unchanged; they change nothing here: every epoch is one batch, handed to the OS as it is written.
SEED_SINK_KEYS = ("publish_interval", "batch_size")
def read_back_file(parsed: ParsedUri, limit: int) -> list[tuple[str, Any]]:
    """The first ``limit`` JSON lines of the file (ids: line numbers from 0; a line that is not JSON is
    given as ``{"line": TEXT}``); [] while the file does not exist."""
    found: list[tuple[str, Any]] = []
    try:
        with open(file_path(parsed), encoding="utf-8", errors="replace") as lines:
            for number, line in enumerate(lines):
                if len(found) >= limit:
                    break
                if not line.strip():
                    continue
                try:
                    found.append((str(number), json.loads(line)))
                except ValueError:
                    found.append((str(number), {"line": line.rstrip("\n")}))
    except FileNotFoundError:
        return []
    return found


FILE_FORMATS = ("json", "avro")


def _file_format(config: Mapping[str, Any]) -> str:
    fmt = str(config.get("format", "json"))
    if fmt not in FILE_FORMATS:
        raise ValueError(f"file 'format' must be one of {', '.join(FILE_FORMATS)}, not {fmt!r}")
    return fmt


def open_file_source(uri: str, config: Mapping[str, Any]) -> Source:
    """A JSON-lines tail, or with ``format: "avro"`` an Avro container reader (adapters.builtin.avrofile)."""
    if _file_format(config) == "avro":
        return AvroFileSource(uri, config, file_path(parse_uri(uri)))
    return FileSource(uri, config)


def open_file_sink(uri: str, config: Mapping[str, Any]) -> Sink:
    """A JSON-lines appender, or with ``format: "avro"`` an Avro container appender."""
    if _file_format(config) == "avro":
        return AvroFileSink(uri, config, file_path(parse_uri(uri)))
    return FileSink(uri, config)


ADAPTER = Adapter("file", check_file_uri, source=open_file_source, sink=open_file_sink,  # type: ignore[arg-type]
                  source_keys=("start", "format", "avro_schema"),
                  sink_keys=("fsync", "format", "avro_schema", *SEED_SINK_KEYS),
                  read_back=read_back_file)  # one tail reads a file: not shareable
