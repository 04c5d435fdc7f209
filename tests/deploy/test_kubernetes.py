"""The Kubernetes manifests of ``deploy/kubernetes/`` (SPEC §10), checked without a cluster.

* every document of every manifest passes ``kubernetes-validate`` (the schemas ship in the
  package: no network) in strict mode, so a misspelt field is an error;
* the StatefulSet probes ``/healthz`` for readiness and liveness on the port the config binds,
  mounts what the config points at, and outlives the server's own shutdown timeout;
* the DAGs ConfigMap is the one rendered from ``examples/dags`` (what
  ``kubectl create configmap dagserver-dags --from-file=examples/dags`` makes), and those
  files, written out as the pod sees them, are accepted by ``dagserver check``; the config
  in the config ConfigMap loads.

Regenerate the DAGs ConfigMap after changing an example::

    python -m tests.deploy.test_kubernetes > deploy/kubernetes/dags.yaml
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from supervision.config import load_server_config

yaml = pytest.importorskip("yaml", reason="PyYAML comes with kubernetes-validate (the dev extra)")

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "deploy" / "kubernetes"
EXAMPLE_DAGS = ROOT / "examples" / "dags"
KUBERNETES_VERSION = "1.30.0"
HEADER = ("# The DAG files, mounted at /etc/dagserver/dags. Rendered from examples/dags by\n"
          "#   python -m tests.deploy.test_kubernetes > deploy/kubernetes/dags.yaml\n"
          "# (the same as kubectl create configmap dagserver-dags --from-file=examples/dags);\n"
          "# put your own DAG files in its place.\n")


def documents() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for path in sorted(MANIFESTS.glob("*.yaml")):
        found.extend((path.name, doc) for doc in yaml.safe_load_all(path.read_text()) if doc)
    return found


def manifest(kind: str, name: str) -> dict[str, Any]:
    return next(doc for _file, doc in documents() if doc["kind"] == kind and doc["metadata"]["name"] == name)


def render_dags_configmap(folder: Path = EXAMPLE_DAGS) -> dict[str, Any]:
    """The ConfigMap holding every ``*.json`` of ``folder`` (not its sub-folders) under its file name."""
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "dagserver-dags", "labels": {"app.kubernetes.io/name": "dagserver"}},
            "data": {path.name: path.read_text() for path in sorted(folder.glob("*.json"))}}


def test_every_manifest_passes_the_kubernetes_schemas() -> None:
    validate = pytest.importorskip("kubernetes_validate", reason="pip install -e '.[dev]' (kubernetes-validate)")
    kinds = []
    for file_name, doc in documents():
        try:
            validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except validate.ValidationError as exc:
            pytest.fail(f"deploy/kubernetes/{file_name}: {doc['kind']} {doc['metadata']['name']}: {exc}")
        kinds.append(doc["kind"])
    assert sorted(set(kinds)) == ["ConfigMap", "PodDisruptionBudget", "Secret", "Service", "StatefulSet"], kinds


def test_a_misspelt_field_is_caught_by_the_validation() -> None:
    validate = pytest.importorskip("kubernetes_validate", reason="pip install -e '.[dev]' (kubernetes-validate)")
    broken = manifest("StatefulSet", "dagserver")
    broken["spec"]["replica"] = broken["spec"].pop("replicas")
    with pytest.raises(validate.ValidationError):
        validate.validate(broken, KUBERNETES_VERSION, strict=True)


def test_the_statefulset_probes_healthz_and_mounts_what_the_config_names() -> None:
    config = manifest("ConfigMap", "dagserver-config")["data"]["supervisor.toml"]
    pod = manifest("StatefulSet", "dagserver")["spec"]["template"]["spec"]
    server = next(c for c in pod["containers"] if c["name"] == "dagserver")
    port = next(p["containerPort"] for p in server["ports"] if p["name"] == "http")
    assert f'bind = "0.0.0.0:{port}"' in config
    for probe in ("readinessProbe", "livenessProbe"):
        assert server[probe]["httpGet"] == {"path": "/healthz", "port": "http"}, probe
    mounts = {m["mountPath"] for m in server["volumeMounts"]}
    for path in ("/etc/dagserver/supervisor.toml", "/etc/dagserver/dags", "/var/lib/dagserver"):
        assert path in mounts
    assert server["args"] == ["serve", "-c", "/etc/dagserver/supervisor.toml"]
    assert pod["terminationGracePeriodSeconds"] > 15  # shutdown_timeout in the config
    service = manifest("Service", "dagserver")
    assert service["spec"]["selector"] == pod.get("labels", manifest("StatefulSet", "dagserver")["spec"]["selector"]
                                                   ["matchLabels"])


def test_the_dags_configmap_is_rendered_from_the_examples_and_passes_dagserver_check(tmp_path: Path) -> None:
    shipped = manifest("ConfigMap", "dagserver-dags")
    assert shipped == render_dags_configmap(), "deploy/kubernetes/dags.yaml is stale: " + __doc__.rsplit("\n\n", 1)[1]
    dags = tmp_path / "etc" / "dagserver" / "dags"
    dags.mkdir(parents=True)
    for name, text in shipped["data"].items():
        (dags / name).write_text(text)
    result = subprocess.run([sys.executable, "-m", "supervisor", "check", str(dags)], cwd=ROOT, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("ok: ") == len(shipped["data"]) > 0, result.stdout
    config = tmp_path / "supervisor.toml"
    config.write_text(manifest("ConfigMap", "dagserver-config")["data"]["supervisor.toml"])
    loaded = load_server_config(str(config))
    assert (list(loaded.dags), str(loaded.state_dir)) == (["/etc/dagserver/dags"], "/var/lib/dagserver/state")


def _block(dumper: Any, text: str) -> Any:
    """Multi-line strings as ``|`` blocks: the DAG files stay readable in the manifest."""
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style="|" if "\n" in text else None)


if __name__ == "__main__":
    yaml.SafeDumper.add_representer(str, _block)
    sys.stdout.write(HEADER + yaml.safe_dump(render_dags_configmap(), sort_keys=False, width=120))
