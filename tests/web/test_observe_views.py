"""The tap and capture views over a small in-memory service: what any record turns into (SPEC §7, §13).

Records may hold bytes and NaN (msgpack carries both); the API must still answer valid JSON,
and the capture's download must hold files a strict JSON reader takes.
"""

from __future__ import annotations

import base64
import io
import json
import tarfile
from typing import Any

from web.app import create_app
from web.service import UnknownDag

ODD = {"raw": b"\x00\xffdata", "x": float("nan"), "big": float("inf"), "ok": 1}


class ObservedService:
    """Only what the tap and capture views ask for."""

    def __init__(self, capture_state: str = "done") -> None:
        self.capture_state = capture_state

    def tap(self, name: str, node: str, after: int = 0) -> dict[str, Any]:
        if name != "d":
            raise UnknownDag(f"no dag named {name!r}")
        return {"dag": name, "node": node, "newest": 1, "computes": [
            {"seq": 1, "time": 1.5, "record_seq": 7, "input": ODD, "output": ODD, "error": None}]}

    def capture(self, name: str, capture_id: str) -> dict[str, Any]:
        status: dict[str, Any] = {"id": capture_id, "state": self.capture_state, "records": 1}
        if self.capture_state == "done":
            status.update(events=[{"subscriber": "s", "record": ODD}], outputs={"p": [ODD]},
                          dag={"name": name, "nodes": []})
        return status


def strict(text: str) -> Any:
    def refuse(constant: str) -> Any:
        raise ValueError(f"not JSON: {constant}")
    return json.loads(text, parse_constant=refuse)


def test_a_tap_with_bytes_and_nan_is_valid_json() -> None:
    client = create_app(ObservedService()).test_client()  # type: ignore[arg-type]
    response = client.get("/api/dags/d/nodes/n/tap?after=0")
    assert response.status_code == 200
    entry = strict(response.get_data(as_text=True))["computes"][0]
    assert entry["input"] == {"raw": base64.b64encode(b"\x00\xffdata").decode(), "x": None, "big": None, "ok": 1}
    assert client.get("/api/dags/e/nodes/n/tap").status_code == 404


def test_a_capture_downloads_as_strict_json_files_in_one_folder() -> None:
    client = create_app(ObservedService()).test_client()  # type: ignore[arg-type]
    response = client.get("/api/dags/d/capture/c1/download")
    assert response.status_code == 200 and response.content_type == "application/gzip"
    assert 'filename="capture-d-c1.tar.gz"' in response.headers["Content-Disposition"]
    with tarfile.open(fileobj=io.BytesIO(response.data), mode="r:gz") as archive:
        files = {m.name: archive.extractfile(m).read().decode() for m in archive.getmembers()}  # type: ignore[union-attr]
    assert sorted(files) == ["capture-d-c1/dag.json", "capture-d-c1/events.jsonl", "capture-d-c1/outputs.json"]
    events = [strict(line) for line in files["capture-d-c1/events.jsonl"].splitlines()]
    assert events == [{"subscriber": "s", "record": {"raw": "AP9kYXRh", "x": None, "big": None, "ok": 1}}]
    assert strict(files["capture-d-c1/outputs.json"])["p"][0]["ok"] == 1


def test_a_capture_not_done_is_not_downloaded() -> None:
    client = create_app(ObservedService("capturing")).test_client()  # type: ignore[arg-type]
    response = client.get("/api/dags/d/capture/c1/download")
    assert response.status_code == 409 and "is capturing" in response.get_json()["error"]
