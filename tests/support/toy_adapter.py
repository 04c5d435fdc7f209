"""A toy adapter, ``toy://COUNT``: a source of COUNT numbered records, and a sink that keeps what it gets.

With ``refuse_commits: true`` every commit of the source fails the way a broker that is away
fails an offset commit or an ACK: counted in ``commit_errors``, never raised (SPEC §6).

It exists to show what adding a URI scheme takes: this one module, declaring its
:class:`~adapters.base.Adapter`, and one line in :data:`adapters.registry.MODULES`
(``tests/adapters/test_toy_scheme.py`` adds that line for the test).
"""

from __future__ import annotations

from typing import Any, ClassVar

from adapters.base import Adapter, ParsedUri, Sink, Source


def check_toy_uri(parsed: ParsedUri) -> str | None:
    return None if parsed.body.isdigit() else f"toy URI {parsed.raw!r} must look like toy://COUNT"


class ToySource(Source):
    def open(self, position: Any | None) -> None:
        self.next, self.count, self.status = position or 0, int(self.parsed.body), "connected"

    def read_batch(self, max_records: int, timeout: float) -> list[Any]:
        batch = [{"n": n} for n in range(self.next, min(self.count, self.next + max_records))]
        self.next += len(batch)
        return batch

    def position(self) -> int:
        return self.next

    def commit(self, position: Any) -> None:
        if self.config.get("refuse_commits"):
            self.commit_errors += 1

    def close(self) -> None:
        self.status = "closed"


class ToySink(Sink):
    kept: ClassVar[list[dict]] = []

    def open(self) -> None:
        self.status = "connected"

    def write_batch(self, records: list[dict]) -> None:
        self.kept.extend(records)

    def close(self) -> None:
        self.status = "closed"


ADAPTER = Adapter("toy", check_toy_uri, source=ToySource, sink=ToySink, source_keys=("label", "refuse_commits"),
                  sink_keys=(),
                  shareable=lambda parsed: True)
