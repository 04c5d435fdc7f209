"""A toy adapter, ``toy://COUNT``: a source of COUNT numbered records, and a sink that keeps what it gets.

With ``refuse_commits: true`` every commit of the source fails the way a broker that is away
fails an offset commit or an ACK: counted in ``commit_errors``, never raised (SPEC §6).

It exists to show what adding a URI scheme takes: this one module, declaring its
:class:`~adapters.base.Adapter`, and one line in :data:`adapters.registry.MODULES`
(``tests/adapters/test_toy_scheme.py`` adds that line for the test).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from adapters.base import CLOSED, CONNECTED, Adapter, ParsedUri, RejectedRecord, Sink, Source, setting


# step 2: the URI rule, one line naming the URI and the shape it must have
def check_toy_uri(parsed: ParsedUri) -> str | None:
    return None if parsed.body.isdigit() else f"toy URI {parsed.raw!r} must look like toy://COUNT"


# step 3: the source
class ToySource(Source):
    def __init__(self, uri: str, config: Mapping[str, Any]) -> None:
        super().__init__(uri, config)  # settings only: nothing connects before open()
        self.label = setting(self.config, self.parsed, "label", None)
        self.count = int(self.parsed.body)

    def open(self, position: Any | None) -> None:
        self.next, self.status = position or 0, CONNECTED  # resume just after the position

    def read_batch(self, max_records: int, timeout: float) -> list[Any]:
        batch = [{"n": n} for n in range(self.next, min(self.count, self.next + max_records))]
        self.next += len(batch)
        if self.label is not None:
            for record in batch:
                record["label"] = self.label
        return batch

    def position(self) -> int:
        return self.next  # msgpack-encodable, just after the last record handed out

    def backlog(self) -> int:
        return self.count - self.next

    def commit(self, position: Any) -> None:
        if self.config.get("refuse_commits"):
            self.commit_errors += 1

    def close(self) -> None:
        self.status = CLOSED


# step 4: the sink
class ToySink(Sink):
    kept: ClassVar[list[dict]] = []

    def open(self) -> None:
        self.status = CONNECTED

    def write_batch(self, records: list[dict]) -> list[RejectedRecord]:
        self.kept.extend(r for r in records if "n" in r)
        return [RejectedRecord(r, "a toy record needs an 'n'") for r in records if "n" not in r]

    def close(self) -> None:
        self.status = CLOSED


ADAPTER = Adapter("toy", check_toy_uri, source=ToySource, sink=ToySink, source_keys=("label", "refuse_commits"),
                  sink_keys=(),
                  shareable=lambda parsed: True)
