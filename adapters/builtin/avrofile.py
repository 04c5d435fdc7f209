"""``file://`` endpoints with ``format: "avro"`` (SPEC §14): an Avro container file (fastavro).

The sink appends every batch as one block to the container (creating it, with the schema of
``avro_schema`` in its header, when the file is missing or empty); ``flush()`` fsyncs unless
``fsync: false``. The source reads the container's records in order; its position is the
number of records returned so far, so a restart skips that many. It follows a container that
grows: at its end it closes the file and, on the next read, opens it again and skips what it
has read (simple and robust against a block being written, but each reopening reads the file
from the start: fine for files of up to some million records, not for huge ones). A file that
is not an Avro container (or is cut inside a block for good) reads as nothing more; records are
decoded with the file's own (writer) schema.

Usage::

    sink = open_sink("file:///data/out.avro", {"format": "avro", "avro_schema": "/etc/out.avsc"})
    source = open_source("file:///data/out.avro", {"format": "avro", "avro_schema": "/etc/out.avsc"})
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator, Mapping
from typing import IO, Any

from adapters.base import CLOSED, CONNECTED, Sink, Source
from graphs.record_schema import parse_avro_schema

try:  # an optional dependency: the ``avro`` extra (parse_avro_schema says what to install)
    import fastavro
except ImportError:  # pragma: no cover
    fastavro = None

log = logging.getLogger("dagserver.adapters.file")

POLL_INTERVAL = 0.05  # seconds between looks at a container that has no new records


def avro_schema_of(config: Mapping[str, Any]) -> Any:
    """The parsed schema named by ``config["avro_schema"]`` (ValueError when missing or unusable)."""
    path = config.get("avro_schema")
    if not path:
        raise ValueError('file format "avro" needs "avro_schema": the path of an Avro schema file (.avsc)')
    return parse_avro_schema(str(path))


class AvroFileSource(Source):
    """Reads an Avro container file's records; position = how many were returned."""

    def __init__(self, uri: str, config: Mapping[str, Any], path: str) -> None:
        super().__init__(uri, config)
        self.path = path
        self.schema = avro_schema_of(self.config)  # checked now: a bad schema fails the DAG's start
        self.committed: int | None = None
        self._count = 0
        self._fh: IO[bytes] | None = None
        self._records: Iterator[Any] | None = None

    def open(self, position: Any | None) -> None:
        self._drop_reader()
        self._count = position if isinstance(position, int) and position >= 0 else 0
        self.status = CONNECTED

    def _reader(self) -> Iterator[Any] | None:
        if self._records is not None:
            return self._records
        try:
            fh = open(self.path, "rb")  # noqa: SIM115 - held while records are read
        except (FileNotFoundError, NotADirectoryError):
            return None
        try:
            records = iter(fastavro.reader(fh))
            for _ in range(self._count):  # skip what was read before
                next(records)
        except (StopIteration, Exception) as exc:  # shorter than the position, empty or being written
            fh.close()
            if not isinstance(exc, StopIteration):
                log.debug("%s: not readable yet: %s", self.path, exc)
            return None
        self._fh, self._records = fh, records
        return records

    def _drop_reader(self) -> None:
        if self._fh is not None:
            self._fh.close()
        self._fh, self._records = None, None

    def read_batch(self, max_records: int, timeout: float) -> list[Any]:
        if self.status == CLOSED:
            raise RuntimeError(f"{self!r} is not open")
        deadline = time.monotonic() + max(0.0, timeout)
        while True:
            out = self._take(max(1, max_records))
            if out:
                return out
            left = deadline - time.monotonic()
            if left <= 0:
                return []
            time.sleep(min(POLL_INTERVAL, left))

    def _take(self, max_records: int) -> list[Any]:
        records = self._reader()
        out: list[Any] = []
        if records is None:
            return out
        try:
            for record in records:
                out.append(record)
                if len(out) >= max_records:
                    break
            else:
                self._drop_reader()  # at the end: the next read opens the file again, to see new blocks
        except Exception as exc:  # a block being written, or damage: retried from the last whole record
            log.debug("%s: stopped reading: %s", self.path, exc)
            self._drop_reader()
        self._count += len(out)
        return out

    def position(self) -> int:
        return self._count

    def commit(self, position: Any) -> None:
        self.committed = position

    def close(self) -> None:
        self._drop_reader()
        self.status = CLOSED


class AvroFileSink(Sink):
    """Appends each batch as one block of an Avro container file."""

    def __init__(self, uri: str, config: Mapping[str, Any], path: str) -> None:
        super().__init__(uri, config)
        self.path = path
        self.schema = avro_schema_of(self.config)
        self.fsync = bool(self.config.get("fsync", True))
        self._fh: IO[bytes] | None = None

    def open(self) -> None:
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        self._fh = open(self.path, "a+b")  # noqa: SIM115 - held until close()
        if os.fstat(self._fh.fileno()).st_size == 0:
            fastavro.writer(self._fh, self.schema, [])  # the header: schema and sync marker
            self._fh.flush()
        self.status = CONNECTED

    def write_batch(self, records: list[dict]) -> None:
        if self._fh is None:
            raise RuntimeError(f"{self!r} is not open")
        for record in records:  # check all first: a record the schema cannot hold writes nothing
            if not fastavro.validation.validate(record, self.schema, raise_errors=False):
                raise ValueError(f"record does not fit the avro_schema {self.config.get('avro_schema')}: {record!r}")
        fastavro.writer(self._fh, self.schema, records)  # "a+b": appended as a block after the header's marker
        self._fh.flush()

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
