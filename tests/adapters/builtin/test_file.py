"""file:// JSON lines: tailing, partial lines, truncation, resume, rejects, and the sink."""

from __future__ import annotations

import base64
import json
import logging
import os
import threading

import pytest

from adapters.base import RejectedRecord
from adapters.builtin.file import FileSink, FileSource
from adapters.registry import is_shareable, open_sink, open_source

_OPENED: list[FileSource] = []


@pytest.fixture(autouse=True)
def _close_sources():
    """Every source ``_source`` opened is closed after its test (an open one keeps its file open)."""
    yield
    while _OPENED:
        _OPENED.pop().close()


def _source(path, position=None, **config) -> FileSource:
    src = FileSource(f"file://{path}", config)
    src.open(position)
    _OPENED.append(src)
    return src


def _append(path, text: str) -> None:
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(text)


def test_registry_and_paths(tmp_path, monkeypatch):
    assert isinstance(open_source(f"file://{tmp_path}/a.jsonl", {}), FileSource)
    assert isinstance(open_sink(f"file://{tmp_path}/a.jsonl", {}), FileSink)
    assert not is_shareable(f"file://{tmp_path}/a.jsonl")
    monkeypatch.chdir(tmp_path)
    assert FileSource("file://var/in.jsonl", {}).path == str(tmp_path / "var" / "in.jsonl")
    assert FileSource("file:///abs/x.jsonl", {}).path == "/abs/x.jsonl"


def test_partial_last_line_waits_for_its_newline(tmp_path):
    path = tmp_path / "in.jsonl"
    _append(path, '{"a":1}\n{"b":')
    src = _source(path)
    assert src.read_batch(10, timeout=0) == [{"a": 1}]
    assert src.position() == 8
    assert src.read_batch(10, timeout=0.01) == []
    _append(path, "2}\n")
    assert src.read_batch(10, timeout=0) == [{"b": 2}]
    assert src.position() == os.path.getsize(path)


def test_max_records_and_position_after_last_returned_line(tmp_path):
    path = tmp_path / "in.jsonl"
    lines = [json.dumps({"i": i}) + "\n" for i in range(5)]
    _append(path, "".join(lines))
    src = _source(path)
    assert src.read_batch(2, timeout=0) == [{"i": 0}, {"i": 1}]
    assert src.position() == len(lines[0]) + len(lines[1])
    assert src.read_batch(10, timeout=0) == [{"i": i} for i in range(2, 5)]


def test_resume_from_position_after_reopen_does_not_reread(tmp_path):
    path = tmp_path / "in.jsonl"
    _append(path, '{"i":0}\n{"i":1}\n{"i":2}\n')
    src = _source(path)
    assert src.read_batch(2, timeout=0) == [{"i": 0}, {"i": 1}]
    pos = src.position()
    src.commit(pos)
    assert src.committed == pos
    src.close()
    assert src.status == "closed"
    _append(path, '{"i":3}\n')
    again = _source(path, position=pos)
    assert again.read_batch(10, timeout=0) == [{"i": 2}, {"i": 3}]


def test_blank_lines_skipped_and_bad_lines_rejected(tmp_path):
    path = tmp_path / "in.jsonl"
    _append(path, '{"a":1}\n\n   \nnot json\r\n[1,2]\n\xff\n{"b":2}\n')
    with open(path, "ab") as fh:
        fh.write(b"\xff\xfe{\n")
    items = _source(path).read_batch(100, timeout=0)
    assert items[0] == {"a": 1}
    assert isinstance(items[1], RejectedRecord) and items[1].raw == "not json"
    assert "not JSON" in items[1].reason
    assert items[2] == [1, 2]  # parses, not a map: the runtime rejects it
    assert isinstance(items[3], RejectedRecord)
    assert items[4] == {"b": 2}
    assert isinstance(items[5], RejectedRecord)  # invalid UTF-8
    assert len(items) == 6


def test_truncated_file_restarts_from_zero(tmp_path, caplog):
    path = tmp_path / "in.jsonl"
    _append(path, '{"i":0}\n{"i":1}\n')
    src = _source(path)
    assert len(src.read_batch(10, timeout=0)) == 2
    path.write_text('{"n":9}\n')
    with caplog.at_level(logging.WARNING, logger="adapters.builtin.file"):
        assert src.read_batch(10, timeout=0) == [{"n": 9}]
    assert "truncated" in caplog.text
    assert src.position() == 8


def test_saved_offset_beyond_end_restarts_from_zero(tmp_path, caplog):
    path = tmp_path / "in.jsonl"
    _append(path, '{"i":0}\n')
    with caplog.at_level(logging.WARNING, logger="adapters.builtin.file"):
        src = _source(path, position=1000)
    assert src.read_batch(10, timeout=0) == [{"i": 0}]
    assert "shorter" in caplog.text


def test_missing_file_is_waited_for(tmp_path):
    path = tmp_path / "later.jsonl"
    src = _source(path, start="end")  # nothing existed: everything that appears is new
    assert src.read_batch(10, timeout=0.01) == []
    assert src.status == "connected"
    assert src.position() == 0
    _append(path, '{"x":1}\n')
    assert src.read_batch(10, timeout=0) == [{"x": 1}]


def test_start_end_skips_existing_lines(tmp_path):
    path = tmp_path / "in.jsonl"
    _append(path, '{"old":1}\n')
    src = _source(path, start="end")
    assert src.read_batch(10, timeout=0) == []
    _append(path, '{"new":1}\n')
    assert src.read_batch(10, timeout=0) == [{"new": 1}]


def test_read_waits_for_a_line_written_meanwhile(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text("")
    src = _source(path)
    writer = threading.Thread(target=_append, args=(path, '{"late":true}\n'))
    writer.start()
    assert src.read_batch(10, timeout=5) == [{"late": True}]
    writer.join(5)


def test_rotated_file_is_followed_after_the_old_one_is_drained(tmp_path):
    path = tmp_path / "in.jsonl"
    _append(path, '{"i":0}\n')
    src = _source(path)
    assert src.read_batch(10, timeout=0) == [{"i": 0}]
    _append(path, '{"i":1}\n')
    os.rename(path, tmp_path / "in.jsonl.1")
    _append(path, '{"i":2}\n')
    assert src.read_batch(10, timeout=0) == [{"i": 1}]
    assert src.read_batch(10, timeout=0) == [{"i": 2}]


def test_sink_appends_compact_lines_and_creates_dirs(tmp_path):
    path = tmp_path / "deep" / "er" / "out.jsonl"
    sink = FileSink(f"file://{path}", {})
    sink.open()
    assert sink.status == "connected"
    sink.write_batch([{"a": 1, "b": [1, 2]}, {"raw": b"\x00\xff"}])
    sink.flush()
    lines = path.read_text().splitlines()
    assert lines[0] == '{"a":1,"b":[1,2]}'
    assert base64.b64decode(json.loads(lines[1])["raw"]) == b"\x00\xff"
    with pytest.raises(TypeError):
        sink.write_batch([{"ok": 1}, {"bad": {1, 2}}])
    sink.close()
    assert sink.status == "closed"
    assert len(path.read_text().splitlines()) == 2  # the failed batch wrote nothing


def test_relative_sink_path_and_round_trip(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    sink = open_sink("file://var/out.jsonl", {})
    sink.open()
    sink.write_batch([{"n": i} for i in range(3)])
    sink.flush()
    src = open_source("file://var/out.jsonl", {})
    src.open(None)
    assert src.read_batch(10, timeout=0) == [{"n": i} for i in range(3)]
    sink.close()
    src.close()


def test_sink_cut_back_to_the_checkpointed_length_on_resume(tmp_path, caplog):
    out = tmp_path / "out.jsonl"
    first = FileSink(f"file://{out}", {})
    first.open()
    first.write_batch([{"a": 1}])
    first.flush()
    state = first.checkpoint_state()  # what a checkpoint epoch records
    assert state == {"length": len(b'{"a":1}\n')}
    first.write_batch([{"a": 2}])  # after the checkpoint: the replay writes it again
    first.close()
    again = FileSink(f"file://{out}", {})
    again.resume_from(state)
    again.open()
    again.write_batch([{"a": 2}])
    again.close()
    assert out.read_text() == '{"a":1}\n{"a":2}\n'
    out.write_text("")  # shorter than recorded (someone emptied it): appended to, with a warning
    shorter = FileSink(f"file://{out}", {})
    shorter.resume_from(state)
    with caplog.at_level(logging.WARNING, logger="adapters.builtin.file"):
        shorter.open()
    shorter.close()
    assert "shorter" in caplog.text and out.read_text() == ""
