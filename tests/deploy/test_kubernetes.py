"""deploy/kubernetes/ rendered by the real kustomize (`kubectl kustomize`) and validated offline:
built-in kinds against the Kubernetes API schemas (the `kubernetes-validate` package), custom
resources against vendored CRD schemas (crd-schemas/SOURCES.md); then what the manifests promise
(probes, hardening, selectors, keys from a Secret file, KServe's contract) checked on the output."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from service.settings import Settings
from tests.deploy.conftest import ROOT

KUBE = ROOT / "deploy" / "kubernetes"
SCHEMAS = Path(__file__).parent / "crd-schemas"
KUBERNETES_VERSION = "1.30.0"  # the oldest minor the manifests target (autoscaling/v2, policy/v1)
ROOTS = ["base", "overlays/example", "kserve"]
CRDS = {
    ("serving.kserve.io/v1alpha1", "ClusterServingRuntime"): "clusterservingruntime_v1alpha1",
    ("serving.kserve.io/v1beta1", "InferenceService"): "inferenceservice_v1beta1",
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "servicemonitor_v1",
}


@cache
def render(root: str) -> tuple[dict[str, Any], ...]:
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl missing (its `kustomize` renders deploy/kubernetes)"
    result = subprocess.run(
        [kubectl, "kustomize", str(KUBE / root)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return tuple(d for d in yaml.safe_load_all(result.stdout) if d)


def one(docs: tuple[dict[str, Any], ...], kind: str) -> dict[str, Any]:
    (doc,) = [d for d in docs if d["kind"] == kind]
    return doc


@cache
def crd_validator(api_version: str, kind: str) -> Any:
    group = api_version.split("/")[0]
    schema = json.loads((SCHEMAS / f"{group}_{CRDS[(api_version, kind)]}.json").read_text())
    # No check_schema (jsonschema.validate's first step): on the 0.4 MB InferenceService schema
    # it takes ~20 s here, and the catalog's schemas are known good.
    return jsonschema.validators.validator_for(schema)(schema)


def settings_env(docs: tuple[dict[str, Any], ...]) -> dict[str, str]:
    """The AESERVE_* variables a pod of the Deployment gets: ConfigMap, then container env."""
    env = dict(one(docs, "ConfigMap")["data"])
    container = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    env.update({e["name"]: e["value"] for e in container.get("env", [])})
    return env


def dockerfile_user() -> str:
    users = re.findall(r"^USER\s+(\S+)", (ROOT / "Dockerfile").read_text(), flags=re.M)
    return users[-1].split(":")[0]  # the runtime stage is the last


@pytest.mark.parametrize("root", ROOTS)
def test_manifests_validate_against_their_schemas(root: str) -> None:
    docs = render(root)
    assert docs
    for doc in docs:
        key = (doc["apiVersion"], doc["kind"])
        if key in CRDS:
            crd_validator(*key).validate(doc)
        else:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_an_invalid_manifest_is_refused() -> None:
    """The validators do reject: an unknown field, a wrong type, an unknown CRD field."""
    deployment = json.loads(json.dumps(one(render("base"), "Deployment")))
    deployment["spec"]["replicas"] = "three"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)
    deployment["spec"]["replicas"] = 3
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessprobe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)
    runtime = json.loads(json.dumps(one(render("kserve"), "ClusterServingRuntime")))
    runtime["spec"]["supportedModelFormat"] = runtime["spec"].pop("supportedModelFormats")
    with pytest.raises(jsonschema.ValidationError):
        crd_validator(runtime["apiVersion"], runtime["kind"]).validate(runtime)


@pytest.mark.parametrize("root", ["base", "overlays/example"])
def test_deployment_probes_resources_and_hardening(root: str) -> None:
    docs = render(root)
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    port = {p["name"]: p["containerPort"] for p in container["ports"]}["http"]
    assert str(port) == settings_env(docs)["AESERVE_PORT"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["resources"]["requests"]["cpu"] and container["resources"]["limits"]["memory"]
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] and not security["allowPrivilegeEscalation"]
    assert security["capabilities"]["drop"] == ["ALL"]
    assert pod["securityContext"]["runAsNonRoot"]
    assert str(pod["securityContext"]["runAsUser"]) == dockerfile_user()
    # The read-only root's one writable place, as in docker/compose.yaml.
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    tmp = {v["name"]: v for v in pod["volumes"]}[mounts["/tmp"]]
    assert "emptyDir" in tmp


@pytest.mark.parametrize("root", ["base", "overlays/example"])
def test_service_pdb_hpa_and_monitor_select_the_pods(root: str) -> None:
    docs = render(root)
    deployment = one(docs, "Deployment")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    selects = lambda selector: selector and selector.items() <= pod_labels.items()  # noqa: E731
    assert selects(deployment["spec"]["selector"]["matchLabels"])
    service = one(docs, "Service")
    assert selects(service["spec"]["selector"])
    assert [p["targetPort"] for p in service["spec"]["ports"]] == ["http"]
    assert selects(one(docs, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"])
    hpa = one(docs, "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1", "kind": "Deployment", "name": deployment["metadata"]["name"]
    }  # fmt: skip
    assert hpa["spec"]["minReplicas"] >= 2  # with maxUnavailable 1, a drain keeps one serving
    metrics = {m["type"]: m for m in hpa["spec"]["metrics"]}
    assert metrics["Resource"]["resource"]["name"] == "cpu"
    if root == "overlays/example":
        assert metrics["Pods"]["pods"]["metric"]["name"] == "aeserve_requests_per_second"
        monitor = one(docs, "ServiceMonitor")
        assert (
            monitor["spec"]["selector"]["matchLabels"].items()
            <= service["metadata"]["labels"].items()
        )
        assert [(e["port"], e["path"]) for e in monitor["spec"]["endpoints"]] == [
            ("http", "/metrics")
        ]


def test_example_takes_keys_from_a_secret_file_and_models_from_a_volume() -> None:
    docs = render("overlays/example")
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    env = settings_env(docs)
    # API keys: a file from the Secret, never a variable holding a key.
    keys_file = Path(env["AESERVE_API_KEYS_FILE"])
    keys_mount = mounts[str(keys_file.parent)]
    assert keys_mount["readOnly"]
    assert "secret" in volumes[keys_mount["name"]]
    assert not any("secretKeyRef" in str(e.get("valueFrom")) for e in container.get("env", []))
    # Models: the claim mounted read-only where AESERVE_MODEL_DIR points.
    models = mounts[env["AESERVE_MODEL_DIR"]]
    claim = volumes[models["name"]]["persistentVolumeClaim"]["claimName"]
    assert models["readOnly"] and claim == one(docs, "PersistentVolumeClaim")["metadata"]["name"]
    # The base serves the models built into the image (the Dockerfile's AESERVE_MODEL_DIR).
    assert "AESERVE_MODEL_DIR" not in settings_env(render("base"))


@pytest.mark.parametrize("root", ROOTS)
def test_every_setting_is_one_the_service_reads(root: str) -> None:
    fields = {f"AESERVE_{name.upper()}" for name in Settings.model_fields}
    docs = render(root)
    names: set[str] = set()
    for doc in docs:
        if doc["kind"] == "ConfigMap":
            names |= set(doc["data"])
        for container in doc.get("spec", {}).get("containers", []) + (
            doc.get("spec", {}).get("template", {}).get("spec", {}).get("containers", [])
        ):
            names |= {e["name"] for e in container.get("env", [])}
    assert names and names <= fields, names - fields


def test_kserve_runtime_follows_the_oip_contract() -> None:
    docs = render("kserve")
    runtime = one(docs, "ClusterServingRuntime")
    (container,) = runtime["spec"]["containers"]
    assert container["name"] == "kserve-container"  # the name KServe looks for
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["AESERVE_PORT"] == "8080" and env["AESERVE_MODEL_DIR"] == "/mnt/models"
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"http1": 8080, "h2c": 9000}
    assert env["AESERVE_GRPC_PORT"] == "9000"
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": 8080}
    assert container["securityContext"]["readOnlyRootFilesystem"]
    # With a read-only root, /tmp (where uploads spool) is a volume of the runtime's own.
    (tmp,) = [m for m in container["volumeMounts"] if m["mountPath"] == "/tmp"]
    assert tmp["name"] in {v["name"] for v in runtime["spec"]["volumes"] if "emptyDir" in v}
    assert "v2" in runtime["spec"]["protocolVersions"]
    service = one(docs, "InferenceService")
    model = service["spec"]["predictor"]["model"]
    assert model["runtime"] == runtime["metadata"]["name"]
    formats = {f["name"] for f in runtime["spec"]["supportedModelFormats"]}
    assert model["modelFormat"]["name"] in formats and model["protocolVersion"] == "v2"
    # Two ports need a plain Deployment: KServe's serverless mode allows one per container.
    assert service["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "RawDeployment"
