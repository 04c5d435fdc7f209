"""Seeing inside a running DAG over the API (SPEC §13): tap, inject, capture.

Thin views over the service, like ``web/api.py``. Reading a tap or a capture needs the
``viewer`` role; injecting records and starting a capture ``operator`` (a browser's POST
carries its CSRF token, :mod:`web.auth`). A finished capture downloads as a ``.tar.gz``
holding one folder with ``events.jsonl`` (the ``replay`` format), ``outputs.json``
(publisher -> records) and ``dag.json``: what ``dagserver test --from-capture`` reads.

Usage::

    GET  /api/dags/prices/nodes/value/tap?after=120
    POST /api/dags/prices/subscribers/orders/inject     {"records": [{"price": 2}]}
    POST /api/dags/prices/capture                       {"records": 20, "seconds": 60}
    GET  /api/dags/prices/capture/ID                    (status; events and outputs once done)
    GET  /api/dags/prices/capture/ID/download           (capture-prices-ID.tar.gz)
"""

from __future__ import annotations

import io
import json
import tarfile
import time
from typing import Any

from flask import Blueprint, Response, jsonify, request

from web.api import service
from web.auth import requires
from web.jsonsafe import to_jsonable
from web.service import Invalid, WrongState

observe = Blueprint("observe", __name__)


@observe.get("/api/dags/<name>/nodes/<node>/tap")
def tap(name: str, node: str) -> Response:
    """The node's latest computes after ``?after=SEQ`` (default: all it holds, at most 100)."""
    after = request.args.get("after", "0")
    try:
        since = int(after)
    except ValueError:
        raise Invalid(f"after: a tap entry's seq (a whole number), got {after!r}") from None
    return jsonify(service().tap(name, node, since))


@observe.post("/api/dags/<name>/subscribers/<subscriber>/inject")
@requires("operator")
def inject(name: str, subscriber: str) -> Response:
    """``{"records": [...]}`` enter the DAG as if ``subscriber`` had read them (nothing is committed for them)."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or "records" not in body:
        raise Invalid('the body must be JSON {"records": [RECORD, ...]}, each record a map')
    return jsonify(service().inject(name, subscriber, body["records"]))


@observe.post("/api/dags/<name>/capture")
@requires("operator")
def start_capture(name: str) -> tuple[Response, int]:
    """``{"records": N, "seconds": S}``: record the next N inputs (at most S seconds) and their outputs."""
    body = request.get_json(silent=True) if request.get_data() else {}
    if not isinstance(body, dict):
        raise Invalid('the body must be JSON {"records": N, "seconds": S} (both optional)')
    return jsonify(service().start_capture(name, body.get("records"), body.get("seconds"))), 202


@observe.get("/api/dags/<name>/capture/<capture_id>")
def capture(name: str, capture_id: str) -> Response:
    """A capture's status; once ``done`` also its events, outputs and the DAG file."""
    return jsonify(service().capture(name, capture_id))


@observe.get("/api/dags/<name>/capture/<capture_id>/download")
def download_capture(name: str, capture_id: str) -> Response:
    """A finished capture as ``capture-NAME-ID.tar.gz``: the folder ``dagserver test --from-capture`` reads."""
    status = service().capture(name, capture_id)
    if status.get("state") != "done":
        raise WrongState(f"capture {capture_id} of dag {name!r} is {status.get('state')}: download it once done")
    folder = f"capture-{name}-{capture_id}"
    files = {"events.jsonl": "".join(_json(event) + "\n" for event in status.get("events") or ()),
             "outputs.json": _json(status.get("outputs") or {}, indent=1) + "\n",
             "dag.json": _json(status.get("dag") or {}, indent=2) + "\n"}
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for filename, text in files.items():
            data = text.encode("utf-8")
            info = tarfile.TarInfo(f"{folder}/{filename}")
            info.size, info.mtime, info.mode = len(data), int(time.time()), 0o600
            archive.addfile(info, io.BytesIO(data))
    return Response(buffer.getvalue(), content_type="application/gzip",
                    headers={"Content-Disposition": f'attachment; filename="{folder}.tar.gz"'})


def _json(value: Any, indent: int | None = None) -> str:
    """JSON text of ``value`` as the API writes it (bytes as base64, NaN and infinities as null)."""
    return json.dumps(to_jsonable(value), indent=indent, ensure_ascii=False)
