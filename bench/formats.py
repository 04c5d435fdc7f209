"""``python -m bench.formats [--count N] [--kafka]``: Avro against JSON on the same records (SPEC §14).

* ``json_codec_rps`` / ``avro_codec_rps``: records per second through one encode and one decode
  each, as the adapters do per message (:mod:`adapters.formats`), in this process;
  ``avro_codec_ratio`` is avro / json.
* with ``--kafka`` (a local tansu broker, bench/kafka.py): the Kafka → DAG → Kafka pipeline of
  bench/kafka.py through a supervisor with one worker, once with JSON messages and once with
  Avro ones on both topics: ``kafka_json_rps_1w``, ``kafka_avro_rps_1w`` and
  ``kafka_avro_ratio`` (avro / json); also the mean message sizes.

The last line of stdout is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from adapters.base import parse_uri
from adapters.formats import decode_record, encode_record, endpoint_format
from bench.kafka import Broker, bench_record, count_until, engine_dag
from bench.serving import running

IN_SCHEMA = {"type": "record", "name": "Priced", "fields": [
    {"name": "id", "type": "long"}, {"name": "price", "type": "double"}, {"name": "qty", "type": "long"}]}
OUT_SCHEMA = {"type": "record", "name": "Valued", "fields": [{"name": "value", "type": "double"}]}


def schema_files(folder: Path) -> tuple[str, str]:
    """The input and output schemas written as .avsc files in ``folder``."""
    (folder / "in.avsc").write_text(json.dumps(IN_SCHEMA))
    (folder / "out.avsc").write_text(json.dumps(OUT_SCHEMA))
    return str(folder / "in.avsc"), str(folder / "out.avsc")


def avro_format(path: str) -> str:
    return endpoint_format({"format": "avro", "avro_schema": path}, parse_uri("kafka://topic/bench"), "kafka")


def codec_rps(records: list[dict[str, Any]], fmt: str, repeats: int = 3) -> tuple[float, float]:
    """(records per second through encode + decode, the best of ``repeats``; mean bytes per message)."""
    best, size = 0.0, 0
    for _ in range(repeats):
        start = time.perf_counter()
        encoded = [encode_record(record, fmt) for record in records]
        decoded = [decode_record(data, fmt) for data in encoded]
        best = max(best, len(records) / (time.perf_counter() - start))
        assert decoded == records
        size = sum(map(len, encoded))
    return best, size / len(records)


def codec_figures(count: int, folder: Path) -> dict[str, float]:
    records = [bench_record(i) for i in range(count)]
    avro = avro_format(schema_files(folder)[0])
    json_rps, json_size = codec_rps(records, "json")
    avro_rps, avro_size = codec_rps(records, avro)
    return {"json_codec_rps": json_rps, "avro_codec_rps": avro_rps, "avro_codec_ratio": avro_rps / json_rps,
            "json_bytes": json_size, "avro_bytes": avro_size}


def pipeline_rps(bootstrap: str, count: int, fmt: dict[str, Any], out_fmt: dict[str, Any], tag: str) -> float:
    """The bench/kafka.py DAG with ``fmt`` on its subscriber and ``out_fmt`` on its publisher."""
    from kafka import KafkaAdminClient, KafkaProducer
    from kafka.admin import NewTopic

    source, target = f"fmt-in-{tag}-{time.monotonic_ns()}", f"fmt-out-{tag}-{time.monotonic_ns()}"
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics([NewTopic(t, 1, 1) for t in (source, target)])
    finally:
        admin.close()
    encoding = avro_format(fmt["avro_schema"]) if fmt else "json"
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    try:
        for i in range(count):
            producer.send(source, encode_record(bench_record(i), encoding))
        producer.flush()
    finally:
        producer.close()
    dag = engine_dag(bootstrap, source, target)
    dag["subscribers"][0]["config"].update(fmt)
    dag["publishers"][0]["config"].update(out_fmt)
    with running([dag]):
        seen, first, last = count_until(bootstrap, target, count)
    if seen < count or first is None:
        raise RuntimeError(f"the {tag} pipeline published {seen} of {count} records")
    return seen / max(last - first, 1e-9)


def kafka_format_figures(count: int, folder: Path) -> dict[str, float]:
    in_schema, out_schema = schema_files(folder)
    with Broker() as broker:
        json_rps = pipeline_rps(broker.bootstrap, count, {}, {}, "json")
        avro_rps = pipeline_rps(broker.bootstrap, count, {"format": "avro", "avro_schema": in_schema},
                                {"format": "avro", "avro_schema": out_schema}, "avro")
    return {"kafka_json_rps_1w": json_rps, "kafka_avro_rps_1w": avro_rps, "kafka_avro_ratio": avro_rps / json_rps}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.formats", description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100_000, help="records per run (default 100000)")
    parser.add_argument("--kafka", action="store_true", help="also run the Kafka → DAG → Kafka pipeline")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        figures = codec_figures(args.count, Path(tmp))
        if args.kafka:
            figures.update(kafka_format_figures(args.count, Path(tmp)))
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
