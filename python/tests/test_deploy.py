"""deploy/tokenscan-recorder.yaml: valid for Kubernetes, and the pod the recorder's container test runs.

The schemas are the published Kubernetes OpenAPI schemas that kubernetes-validate
ships (no cluster, no network). The pod's capabilities and mounts are compared
with ebpf-recorder/tests/node.rs, which runs the static recorder in a runc
container configured that way: the manifest cannot drift from what was proven.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]

kubernetes_validate = pytest.importorskip("kubernetes_validate")

REPO = Path(__file__).resolve().parents[2]
MANIFEST = REPO / "deploy" / "tokenscan-recorder.yaml"
NODE_TEST = REPO / "ebpf-recorder" / "tests" / "node.rs"


def _pod() -> dict[str, Any]:
    """The manifest's one document."""
    docs = list(yaml.safe_load_all(MANIFEST.read_text()))
    assert len(docs) == 1
    pod: dict[str, Any] = docs[0]
    return pod


def _recorder(pod: dict[str, Any]) -> dict[str, Any]:
    """The recorder container."""
    (c,) = [c for c in pod["spec"]["containers"] if c["name"] == "recorder"]
    container: dict[str, Any] = c
    return container


@pytest.mark.parametrize("version", ["1.30.0", kubernetes_validate.latest_version()])
def test_manifest_validates_against_the_published_schema(version: str) -> None:
    """Strict validation: a misspelt or unknown field fails too."""
    kubernetes_validate.validate(_pod(), version, strict=True)


def test_validation_catches_a_wrong_field() -> None:
    """The validator is not a no-op: a string where a boolean belongs fails."""
    pod = _pod()
    pod["spec"]["hostPID"] = "yes"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(pod, kubernetes_validate.latest_version(), strict=True)


def test_pod_shape() -> None:
    """Pinned to a node, host PID namespace, tolerates every taint, not privileged, bounded resources."""
    pod = _pod()
    spec = pod["spec"]
    assert pod["kind"] == "Pod"
    assert spec["nodeName"] and spec["hostPID"] is True
    assert {"operator": "Exists"} in spec["tolerations"]
    assert spec["restartPolicy"] == "Never"
    rec = _recorder(pod)
    sc = rec["securityContext"]
    assert sc["privileged"] is False and sc["readOnlyRootFilesystem"] is True
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert "--duration" in rec["args"]
    out = rec["args"][rec["args"].index("-o") + 1]
    for c in spec["containers"]:
        assert set(c["resources"]) == {"requests", "limits"}, c["name"]
    # Every mount read-only except the capture's directory, which is a hostPath (kept for kubectl cp).
    mounts = {m["mountPath"]: m for m in rec["volumeMounts"]}
    writable = [p for p, m in mounts.items() if not m.get("readOnly")]
    assert writable == [str(Path(out).parent)]
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert all("hostPath" in volumes[m["name"]] for m in rec["volumeMounts"])
    # The fetch container (it has tar, for kubectl cp) sees the capture's directory read-only.
    (fetch,) = [c for c in spec["containers"] if c["name"] == "fetch"]
    out_volume = mounts[writable[0]]["name"]
    assert {"name": out_volume, "mountPath": writable[0], "readOnly": True} in fetch["volumeMounts"]


def test_pod_grants_what_the_container_test_proved() -> None:
    """Capabilities and mounts equal those of ebpf-recorder/tests/node.rs's runc pod."""
    rec = _recorder(_pod())
    src = NODE_TEST.read_text()
    m = re.search(r"const POD_CAPS: \[&str; \d+\] = \[([^\]]*)\]", src)
    assert m, "POD_CAPS in node.rs"
    proven_caps = [c.strip().strip('"').removeprefix("CAP_") for c in m.group(1).split(",") if c.strip()]
    assert rec["securityContext"]["capabilities"]["add"] == proven_caps
    proven_mounts = set(re.findall(r'\("(/[^"]*)", "(/[^"]*)", (?:true|false)\)', src))
    spec = _pod()["spec"]
    volumes = {v["name"]: v["hostPath"]["path"] for v in spec["volumes"]}
    host_mounts = {(volumes[m["name"]], m["mountPath"]) for m in rec["volumeMounts"] if m["mountPath"] != "/out"}
    assert host_mounts == proven_mounts
