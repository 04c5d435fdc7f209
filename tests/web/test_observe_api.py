"""Tap, inject and capture through a real ``dagserver serve`` (SPEC §13), good and bad requests.

One server for the module: ``obs`` (a metronome -> ``tick`` with ApplyDefaults -> ``out`` -> a file)
and ``other`` (stopped by a test, for the 409s). The capture's download is turned into a test
with ``dagserver test --from-capture`` and run.
"""

from __future__ import annotations

import io
import json
import subprocess
import tarfile
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from actors.capture import CAPTURE_MAX_RECORDS
from supervision.observing import INJECT_MAX_RECORDS
from tests.support.supervised import DAGSERVER, SupervisedServer, metronome_dag, read_jsonl
from tests.support.waiting import wait_until

LABEL = {"name": "label", "type": "ApplyDefaultsCalculator", "config": {"defaults": {"label": "v1"}}}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SupervisedServer]:
    tmp = tmp_path_factory.mktemp("observe")
    dags = {"obs": metronome_dag("obs", tmp / "obs.jsonl", interval=0.1, calculator=LABEL),
            "other": metronome_dag("other", tmp / "other.jsonl", interval=0.5)}
    with SupervisedServer(tmp, dags, workers=1) as running:
        running.wait_dags("running")
        yield running


def strict_json(text: str) -> Any:
    """Parse as a strict JSON reader would: NaN and Infinity are not JSON."""
    def refuse(constant: str) -> Any:
        raise ValueError(f"not JSON: {constant}")
    return json.loads(text, parse_constant=refuse)


def raw(server: SupervisedServer, method: str, path: str, data: bytes | None = None,
        role: str = "admin") -> tuple[int, bytes]:
    request = urllib.request.Request(f"{server.base_url}{path}", method=method, data=data)
    request.add_header("Authorization", f"Bearer {server.tokens[role]}")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def tap_entries(server: SupervisedServer, node: str, after: int = 0, role: str = "viewer") -> list[dict[str, Any]]:
    status, body = raw(server, "GET", f"/api/dags/obs/nodes/{node}/tap?after={after}", role=role)
    assert status == 200, body
    return list(strict_json(body.decode())["computes"])


def test_a_viewer_reads_a_tap_that_fills_once_opened(server: SupervisedServer) -> None:
    tap_entries(server, "tick")  # the first read switches it on
    assert wait_until(lambda: len(tap_entries(server, "tick")) >= 3, timeout=10)
    entries = tap_entries(server, "tick")
    assert set(entries[0]) >= {"seq", "time", "input", "output", "error"}
    assert entries[-1]["output"]["label"] == "v1" and entries[-1]["input"]["message"] == "obs"
    seqs = [e["seq"] for e in entries]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    newer = tap_entries(server, "tick", after=seqs[-2])
    assert newer and newer[0]["seq"] == seqs[-1]
    assert wait_until(lambda: tap_entries(server, "out"), timeout=10)  # every node has its own tap


def test_tap_of_an_unknown_node_or_dag_is_404_with_a_suggestion(server: SupervisedServer) -> None:
    status, body = server.get("/api/dags/obs/nodes/tic/tap")
    assert status == 404 and "did you mean 'tick'?" in body["error"]
    status, body = server.get("/api/dags/obz/nodes/tick/tap")
    assert status == 404 and "did you mean 'obs'?" in body["error"]
    status, body = server.get("/api/dags/obs/nodes/tick/tap?after=x")
    assert status == 400 and "after" in body["error"]


def test_an_injected_record_reaches_the_tap_and_the_sink(server: SupervisedServer) -> None:
    tap_entries(server, "tick")
    status, body = server.request("POST", "/api/dags/obs/subscribers/clock/inject", auth="operator",
                                  body={"records": [{"message": "injected", "n": 1}]})
    assert status == 200 and body["injected"] == 1, body
    sink = server.tmp / "obs.jsonl"
    assert wait_until(lambda: {"message": "injected", "n": 1, "label": "v1"} in read_jsonl(sink), timeout=10)
    assert any(e["input"] == {"message": "injected", "n": 1} for e in tap_entries(server, "tick"))


def test_nan_in_a_tapped_record_comes_out_as_valid_json(server: SupervisedServer) -> None:
    tap_entries(server, "tick")
    status, body = raw(server, "POST", "/api/dags/obs/subscribers/clock/inject",
                       b'{"records": [{"message": "nan", "x": NaN}]}', role="operator")
    assert status == 200, body
    assert wait_until(lambda: any(e["input"].get("message") == "nan" for e in tap_entries(server, "tick")))
    entry = next(e for e in tap_entries(server, "tick") if e["input"].get("message") == "nan")
    assert entry["input"]["x"] is None and entry["output"]["x"] is None


def test_bad_injections_are_refused_with_the_reason(server: SupervisedServer) -> None:
    post = "/api/dags/obs/subscribers/{}/inject"
    status, body = server.request("POST", post.format("clok"), body={"records": [{"a": 1}]})
    assert status == 404 and "no subscriber 'clok'" in body["error"] and "did you mean 'clock'?" in body["error"]
    status, body = server.request("POST", "/api/dags/obz/subscribers/clock/inject", body={"records": [{"a": 1}]})
    assert status == 404 and "did you mean 'obs'?" in body["error"]
    status, body = server.request("POST", post.format("clock"), body={"records": [{"a": 1}, [1, 2]]})
    assert status == 400 and body["error"].startswith("records[1]: a record is a map (a JSON object), got a list")
    status, body = server.request("POST", post.format("clock"), body={"records": "x"})
    assert status == 400 and "records" in body["error"]
    status, body = server.request("POST", post.format("clock"), body=[{"a": 1}])
    assert status == 400 and '{"records"' in body["error"]
    status, body = server.request("POST", post.format("clock"), body={"records": [{}] * (INJECT_MAX_RECORDS + 1)})
    assert status == 413 and f"at most {INJECT_MAX_RECORDS}" in body["error"]
    status, body = server.request("POST", post.format("clock"), auth="viewer", body={"records": [{"a": 1}]})
    assert status == 403


def test_a_capture_over_the_cap_is_refused_with_the_cap(server: SupervisedServer) -> None:
    status, body = server.request("POST", "/api/dags/obs/capture", body={"records": CAPTURE_MAX_RECORDS + 1})
    assert status == 400 and f"over the capture cap of {CAPTURE_MAX_RECORDS} records" in body["error"]
    status, body = server.request("POST", "/api/dags/obs/capture", body={"records": 5, "seconds": -1})
    assert status == 400 and body["error"].startswith("seconds:")
    status, body = server.request("POST", "/api/dags/obs/capture", auth="viewer", body={"records": 5})
    assert status == 403
    status, body = server.get("/api/dags/obs/capture/feedbeef")
    assert status == 404 and "no capture 'feedbeef'" in body["error"]


def test_a_capture_downloads_as_a_folder_that_becomes_a_passing_test(server: SupervisedServer, tmp_path: Path) -> None:
    status, started = server.request("POST", "/api/dags/obs/capture", auth="operator", body={"records": 10})
    assert status == 202 and started["state"] == "capturing", started
    path = f"/api/dags/obs/capture/{started['id']}"
    assert wait_until(lambda: server.get(path)[1]["state"] == "done", timeout=20)
    done = server.get(path)[1]
    assert [e["subscriber"] for e in done["events"]] == ["clock"] * 10
    assert len(done["outputs"]["sink"]) == 10 and all(r["label"] == "v1" for r in done["outputs"]["sink"])
    status, data = raw(server, "GET", path + "/download", role="viewer")
    assert status == 200
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        archive.extractall(tmp_path, filter="data")
    folder = tmp_path / f"capture-obs-{started['id']}"
    assert sorted(p.name for p in folder.iterdir()) == ["dag.json", "events.jsonl", "outputs.json"]
    test_file = tmp_path / "obs_test.json"
    made = subprocess.run([str(DAGSERVER), "test", "--from-capture", str(folder), "-o", str(test_file)],
                          capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    ran = subprocess.run([str(DAGSERVER), "test", str(test_file)], capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "1 passed, 0 failed" in ran.stdout


def test_inject_and_capture_need_a_running_dag(server: SupervisedServer) -> None:
    status, body = server.post("/api/dags/other/stop")
    assert status == 200, body
    status, body = server.request("POST", "/api/dags/other/subscribers/clock/inject", body={"records": [{"a": 1}]})
    assert status == 409 and "it is stopped" in body["error"]
    status, body = server.request("POST", "/api/dags/other/capture", body={"records": 5})
    assert status == 409 and "it is stopped" in body["error"]
