"""JSON records on external systems (adapters/formats.py): the orjson path and the standard-library
path give the same records, and every edge where the two libraries differ is decided one way.

The stdlib path is taken by setting ``adapters.formats.orjson`` to None, as on a host without it.
"""

from __future__ import annotations

import json
import math
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import adapters.formats as formats
from adapters.base import RejectedRecord
from adapters.formats import decode_record, encode_record

orjson = pytest.importorskip("orjson")


@pytest.fixture(params=["orjson", "stdlib"])
def path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Runs a test on both JSON paths."""
    if request.param == "stdlib":
        monkeypatch.setattr(formats, "orjson", None)
    return request.param


def stdlib_round_trip(record: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    with monkeypatch.context() as patched:
        patched.setattr(formats, "orjson", None)
        return decode_record(encode_record(record, "json"), "json")


scalars = (st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**64 - 1)
           | st.floats(allow_nan=True, allow_infinity=True) | st.text(st.characters()) | st.binary(max_size=20))
keys = (st.text(st.characters(), max_size=8) | st.integers(min_value=-(2**63), max_value=2**64 - 1) | st.floats()
        | st.booleans() | st.none())
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
                      max_leaves=20)
records = st.dictionaries(keys, values, max_size=6)


def same(a: Any, b: Any) -> bool:
    """Equality where -0.0 and 0.0 stay apart (both paths keep the sign)."""
    return json.dumps(a) == json.dumps(b)


@settings(max_examples=300, deadline=None)
@given(record=records)
def test_both_paths_decode_to_the_same_record(record: dict[Any, Any]) -> None:
    with pytest.MonkeyPatch.context() as monkeypatch:
        fast = decode_record(encode_record(record, "json"), "json")
        slow = stdlib_round_trip(record, monkeypatch)
        assert same(fast, slow)
        slow_read_of_fast = json.loads(encode_record(record, "json"))  # what any stdlib reader sees
        assert same(slow_read_of_fast, fast)


def test_the_fast_path_writes_with_orjson() -> None:
    record = {"name": "é", "n": 1, "xs": [1.5, None, True]}
    assert encode_record(record, "json") == orjson.dumps(record)
    assert encode_record(record, "json") == '{"name":"é","n":1,"xs":[1.5,null,true]}'.encode()


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_floats_are_written_as_null(path: str, value: float) -> None:
    written = encode_record({"x": value, "ys": [value], "z": {"w": value}}, "json")
    assert written == b'{"x":null,"ys":[null],"z":{"w":null}}'


def test_nan_and_infinity_from_older_writers_are_still_read(path: str) -> None:
    record = decode_record(b'{"a":NaN,"b":Infinity,"c":-Infinity}', "json")
    assert math.isnan(record["a"]) and record["b"] == math.inf and record["c"] == -math.inf


def test_non_string_keys_are_written_as_their_json_text(path: str) -> None:
    assert encode_record({7: "a", 2.5: "b", None: "d"}, "json") == b'{"7":"a","2.5":"b","null":"d"}'
    assert encode_record({True: "c"}, "json") == b'{"true":"c"}'


@pytest.mark.parametrize("number", [2**64, 2**64 - 1, -(2**63) - 1, 10**30])
def test_integers_beyond_64_bits_stay_exact(path: str, number: int) -> None:
    data = encode_record({"n": number}, "json")
    assert data == f'{{"n":{number}}}'.encode()
    assert decode_record(data, "json") == {"n": number}


def test_bytes_values_are_base64_text(path: str) -> None:
    assert encode_record({"k": b"hi", "m": bytearray(b"\x00")}, "json") == b'{"k":"aGk=","m":"AA=="}'


def test_key_order_is_kept(path: str) -> None:
    assert list(decode_record(encode_record({"z": 1, "a": 2, "m": 3}, "json"), "json")) == ["z", "a", "m"]


def test_a_duplicate_key_keeps_the_last_value(path: str) -> None:
    assert decode_record(b'{"a":1,"a":2}', "json") == {"a": 2}


@pytest.mark.parametrize("data", [b'\xff{"a":1}', b'{"a":"\xff"}', b"{oops", b""])
def test_invalid_json_or_utf8_is_rejected(path: str, data: bytes) -> None:
    rejected = decode_record(data, "json")
    assert isinstance(rejected, RejectedRecord) and rejected.reason.startswith("not json: ")
    with pytest.raises(ValueError):
        json.loads(data)  # the reason is the standard library's, as before


def test_lone_surrogates_travel_as_before(path: str) -> None:
    data = encode_record({"s": "\ud800"}, "json")
    assert data == b'{"s":"\\ud800"}'
    assert decode_record(data, "json") == {"s": "\ud800"}


def test_a_bom_is_accepted_as_before(path: str) -> None:
    assert decode_record(b'\xef\xbb\xbf{"a":1}', "json") == {"a": 1}


def test_text_messages_are_read_too(path: str) -> None:
    assert decode_record('{"a":12345678901234567890123}', "json") == {"a": 12345678901234567890123}


@pytest.mark.parametrize("value", [{1, 2}, object(), complex(1, 2)])
def test_what_json_cannot_carry_is_refused(path: str, value: Any) -> None:
    with pytest.raises(TypeError, match="is not JSON serializable"):
        encode_record({"v": value}, "json")


def test_subclasses_and_dates_are_written_or_refused_as_the_stdlib_does() -> None:
    import datetime
    from collections import OrderedDict
    from enum import IntEnum

    class Level(IntEnum):
        HIGH = 3

    assert encode_record(OrderedDict(b=Level.HIGH), "json") == b'{"b":3}'
    with pytest.raises(TypeError, match="datetime is not JSON serializable"):
        encode_record({"t": datetime.datetime(2026, 1, 1)}, "json")


def test_msgpack_is_untouched() -> None:
    assert decode_record(encode_record({"a": b"x"}, "msgpack"), "msgpack") == {"a": b"x"}
    assert encode_record({"a": 1}, "msgpack") == msgpack.packb({"a": 1}, use_bin_type=True)
