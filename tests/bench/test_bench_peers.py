"""``python -m bench --peers`` at a tiny size: the table comes out with a row per peer, measured or skipped
with its reason. No speed is asserted, only shape."""

from __future__ import annotations

from bench.peers import installed, peers_rows


def test_the_peers_table_has_a_line_for_every_peer() -> None:
    rows = peers_rows(2_000, lambda rate, seconds: {"p50_ms": 0.5, "p99_ms": 2.0})
    text = "\n".join(rows)
    assert rows[2].startswith("| bare loop, 3 calculators, 2,000 records |") and rows[2].endswith("| 1.00 |")
    assert "| dagserver in-process (actor runtime) |" in text
    assert "| dagserver server path, 1 worker | 0.50 | 2.00 |" in text
    if installed("bytewax"):
        assert "| Bytewax in-process, input batch 1 |" in text and "| Bytewax in-process, input batch 1000 |" in text
        assert "| Bytewax in-process | " in text  # the latency row
    else:
        assert "| Bytewax | skipped: not installed" in text
    assert "| Quix Streams | skipped: " in text
