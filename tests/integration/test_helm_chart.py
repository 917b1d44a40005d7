"""deploy/helm/metallb-py: linted and rendered by a real Helm (built from the Go module proxy and cached, see
metallb_py.testing.helm), each render accepted by the real API server with a server-side dry run, and the
rendered objects what the values ask for. With no values set it renders what deploy/*.yaml holds: the same
flags, pod specs and RBAC rules, and the same CRDs.

Helm is built on first use (a few minutes, once; this module's timeout allows for it). Without Go the tests
skip, unless METALLB_PY_REQUIRE_K8S=1 (CI), where a Helm that cannot be built is a failure.
"""

from __future__ import annotations

import base64
import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from _controller_support import REPO

from metallb_py.testing import LocalControlPlane
from metallb_py.testing.helm import (
    DEFAULT_HELM_VERSION,
    Helm,
    HelmCommandError,
    HelmError,
    HelmUnavailableError,
    ensure_helm_binary,
)

# The first test to ask for Helm builds it when it is not cached: minutes, not seconds.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(1800)]

DEPLOY = REPO / "deploy"
CHART = DEPLOY / "helm" / "metallb-py"
NS = "metallb-py-helm"  # the test's own namespace, so other tests' metallb-system is left alone

JSON = dict[str, Any]

# A stand-in for the Prometheus Operator's ServiceMonitor CRD (written here, not copied): the fields the chart
# uses and no others, so the server's strict field validation catches a misspelt one.
SERVICE_MONITOR_CRD: JSON = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "servicemonitors.monitoring.coreos.com"},
    "spec": {
        "group": "monitoring.coreos.com",
        "scope": "Namespaced",
        "names": {
            "kind": "ServiceMonitor",
            "listKind": "ServiceMonitorList",
            "plural": "servicemonitors",
            "singular": "servicemonitor",
        },
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "properties": {
                                    "jobLabel": {"type": "string"},
                                    "namespaceSelector": {
                                        "type": "object",
                                        "properties": {
                                            "matchNames": {"type": "array", "items": {"type": "string"}}
                                        },
                                    },
                                    "selector": {
                                        "type": "object",
                                        "properties": {
                                            "matchLabels": {
                                                "type": "object",
                                                "additionalProperties": {"type": "string"},
                                            }
                                        },
                                    },
                                    "endpoints": {
                                        "type": "array",
                                        "items": {
                                            "type": "object",
                                            "properties": {
                                                "port": {"type": "string"},
                                                "path": {"type": "string"},
                                                "interval": {"type": "string"},
                                                "scrapeTimeout": {"type": "string"},
                                                "relabelings": {
                                                    "type": "array",
                                                    "items": {
                                                        "type": "object",
                                                        "properties": {
                                                            "sourceLabels": {
                                                                "type": "array",
                                                                "items": {"type": "string"},
                                                            },
                                                            "targetLabel": {"type": "string"},
                                                        },
                                                    },
                                                },
                                            },
                                        },
                                    },
                                },
                            }
                        },
                    }
                },
            }
        ],
    },
}

L2_DEFAULT: JSON = {}
BGP: JSON = {
    "mode": "bgp",
    "configuration": {
        "ipAddressPools": [{"name": "public", "addresses": ["203.0.113.0/28"], "autoAssign": True}],
        "bgpAdvertisement": {"localPref": 150, "communities": ["64512:100"]},
        "bgpPeers": [{"name": "tor", "myASN": 64512, "peerASN": 64513, "peerAddress": "192.0.2.1"}],
    },
}
METRICS_ON: JSON = {
    "metrics": {
        "controllerPort": 9472,
        "speakerPort": 9473,
        "serviceMonitor": {"enabled": True, "interval": "15s", "labels": {"release": "prometheus"}},
    }
}
PLACED: JSON = {
    "image": {"repository": "registry.example/metallb-py", "tag": "0.1.0-test"},
    "imagePullSecrets": [{"name": "regcred"}],
    "logLevel": "debug",
    "loadBalancerClass": "example.org/metallb-py",
    "controller": {
        "replicas": 3,
        "resources": {"requests": {"cpu": "100m", "memory": "96Mi"}, "limits": {"memory": "512Mi"}},
        "nodeSelector": {"node-role.kubernetes.io/control-plane": ""},
        "tolerations": [
            {"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"}
        ],
        "leaseDuration": 20,
    },
    "speaker": {
        "logLevel": "warning",
        "resources": {
            "requests": {"cpu": "20m", "memory": "48Mi"},
            "limits": {"cpu": "1", "memory": "128Mi"},
        },
        "nodeSelector": {"example.org/edge": "true"},
        "tolerateControlPlane": False,
        "tolerations": [
            {"key": "example.org/dedicated", "operator": "Equal", "value": "lb", "effect": "NoExecute"}
        ],
        "layer2": {"heartbeatInterval": 0.02, "heartbeatTimeout": 0.08},
    },
}
VALUE_SETS = {"l2-default": L2_DEFAULT, "bgp": BGP, "metrics-on": METRICS_ON, "placed": PLACED}


# -- fixtures ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def helm(pytestconfig: pytest.Config) -> Iterator[Helm]:
    """Helm built from the module proxy (cached); its build progress is shown, not captured."""
    capture = pytestconfig.pluginmanager.getplugin("capturemanager")
    try:
        with capture.global_and_fixture_disabled() if capture is not None else contextlib.nullcontext():
            binary = ensure_helm_binary(progress=sys.stderr)
    except HelmError as exc:
        if os.environ.get("METALLB_PY_REQUIRE_K8S") == "1":
            pytest.fail(f"no helm (METALLB_PY_REQUIRE_K8S=1): {exc}", pytrace=False)
        pytest.skip(f"no helm: {exc}")
    with Helm(binary) as h:
        yield h


@pytest.fixture(scope="module")
def cluster_for_charts(control_plane: LocalControlPlane, helm: Helm) -> Iterator[LocalControlPlane]:
    """The session's control plane with the chart's CRDs applied for real (and a ServiceMonitor stand-in),
    and a namespace for the renders; the namespace and the stand-in are deleted after."""
    crds = [o for o in helm.template(CHART, include_crds=True) if o["kind"] == "CustomResourceDefinition"]
    applied = control_plane.kubectl(
        "apply", "--server-side", "--force-conflicts", "-f", "-", input=_dump(crds)
    )
    assert applied.returncode == 0, applied.stderr
    control_plane.kubectl("apply", "-f", "-", input=_dump([SERVICE_MONITOR_CRD]), check=True)
    control_plane.kubectl("create", "namespace", NS, check=True)
    for crd in [*crds, SERVICE_MONITOR_CRD]:
        name = crd["metadata"]["name"]
        control_plane.kubectl(
            "wait", "--for=condition=Established", f"crd/{name}", "--timeout=60s", check=True
        )
    try:
        yield control_plane
    finally:
        control_plane.kubectl("delete", "namespace", NS, "--wait=false")
        control_plane.kubectl("delete", "crd", SERVICE_MONITOR_CRD["metadata"]["name"], "--wait=false")


def _dump(objects: list[JSON]) -> str:
    return yaml.safe_dump_all(objects, sort_keys=False)


def _one(objects: list[JSON], kind: str, name: str) -> JSON:
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, (
        f"{kind}/{name}: {len(found)} rendered; kinds: {sorted({o['kind'] for o in objects})}"
    )
    return found[0]


def _container(objects: list[JSON], kind: str, name: str) -> JSON:
    containers = _one(objects, kind, name)["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    result: JSON = containers[0]
    return result


def _deploy(path: str) -> list[JSON]:
    return [d for d in yaml.safe_load_all((DEPLOY / path).read_text()) if d]


def _kinds(objects: list[JSON]) -> set[str]:
    return {o["kind"] for o in objects}


# -- lint and dry-run ----------------------------------------------------------------------------------------


def test_helm_is_the_pinned_v4(helm: Helm) -> None:
    assert helm.version() == DEFAULT_HELM_VERSION


def test_a_helm_not_in_the_cache_is_not_built_unasked(tmp_path: Path) -> None:
    with pytest.raises(HelmUnavailableError, match="build=True"):
        ensure_helm_binary(cache_dir=tmp_path, build=False)
    assert not (tmp_path / "helm").exists()


def test_only_helm_4_versions_are_built(tmp_path: Path) -> None:
    with pytest.raises(HelmError, match=r"not a Helm 4 version: 'v3\.21\.4'"):
        ensure_helm_binary("v3.21.4", cache_dir=tmp_path)


@pytest.mark.parametrize("values", VALUE_SETS.values(), ids=VALUE_SETS.keys())
def test_the_chart_lints_clean(helm: Helm, values: JSON) -> None:
    report = helm.lint(CHART, values=values)
    assert "1 chart(s) linted, 0 chart(s) failed" in report


@pytest.mark.parametrize("values", VALUE_SETS.values(), ids=VALUE_SETS.keys())
def test_every_render_is_accepted_by_the_api_server(
    helm: Helm, cluster_for_charts: LocalControlPlane, values: JSON
) -> None:
    objects = helm.template(CHART, namespace=NS, values=values)
    assert all(o["metadata"].get("namespace") in (NS, None) for o in objects)
    applied = cluster_for_charts.kubectl(
        "apply", "--dry-run=server", "--validate=strict", "-f", "-", input=_dump(objects)
    )
    assert applied.returncode == 0, applied.stderr
    accepted = [line for line in applied.stdout.splitlines() if line.endswith("(server dry run)")]
    assert len(accepted) == len(objects), applied.stdout


def test_a_misspelt_value_is_refused_by_name(helm: Helm) -> None:
    with pytest.raises(HelmCommandError, match="speaker") as refused:
        helm.template(CHART, values={"speaker": {"tolerationz": []}})
    assert "tolerationz" in str(refused.value)
    with pytest.raises(HelmCommandError, match="mode"):
        helm.template(CHART, values={"mode": "l2"})


def test_bgp_peers_without_bgp_mode_are_refused(helm: Helm) -> None:
    with pytest.raises(HelmCommandError, match=r'configuration\.bgpPeers is set but mode is "layer2"'):
        helm.template(CHART, values={"configuration": {"bgpPeers": BGP["configuration"]["bgpPeers"]}})


# -- the defaults are deploy/*.yaml --------------------------------------------------------------------------


def test_the_defaults_render_the_kustomize_manifests(helm: Helm) -> None:
    objects = helm.template(CHART)  # release metallb-py in metallb-system, as deploy/ installs
    for kind, name, path in [
        ("Deployment", "controller", "controller.yaml"),
        ("DaemonSet", "speaker", "speaker.yaml"),
    ]:
        chart, deploy = _one(objects, kind, name), _one(_deploy(path), kind, name)
        assert chart["spec"]["selector"] == deploy["spec"]["selector"]
        assert chart["spec"]["template"]["spec"] == deploy["spec"]["template"]["spec"], kind
        assert (
            chart["spec"]["template"]["metadata"]["annotations"]
            == deploy["spec"]["template"]["metadata"]["annotations"]
        )
        assert {k: v for k, v in chart["spec"].items() if k != "template"} == {
            k: v for k, v in deploy["spec"].items() if k != "template"
        }
    exclude = [_one(o, "ConfigMap", "metallb-excludel2")["data"] for o in (objects, _deploy("speaker.yaml"))]
    assert [set(data) for data in exclude] == [{"excludel2.yaml"}] * 2
    chart_rule, deploy_rule = (yaml.safe_load(data["excludel2.yaml"]) for data in exclude)
    assert chart_rule == deploy_rule


def test_the_rbac_is_deploy_rbac(helm: Helm) -> None:
    rbac_kinds = {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}

    def rights(objects: list[JSON]) -> dict[tuple[str, str, str], JSON]:
        return {
            (o["kind"], o["metadata"]["name"], o["metadata"].get("namespace", "")): {
                k: o.get(k) for k in ("rules", "roleRef", "subjects")
            }
            for o in objects
            if o["kind"] in rbac_kinds
        }

    assert rights(helm.template(CHART)) == rights(_deploy("rbac.yaml"))


def test_the_chart_crds_are_deploy_crds() -> None:
    chart = {p.name: p.read_bytes() for p in (CHART / "crds").glob("*.yaml")}
    deploy = {p.name: p.read_bytes() for p in (DEPLOY / "crds").glob("*.yaml")}
    assert chart == deploy, "copy deploy/crds/*.yaml to deploy/helm/metallb-py/crds/"


def test_the_gossip_secret_is_128_random_bytes(helm: Helm) -> None:
    objects = helm.template(CHART)
    secret = _one(objects, "Secret", "memberlist")
    key = base64.b64decode(base64.b64decode(secret["data"]["secretkey"]), validate=True)
    assert len(key) == 128
    again = _one(helm.template(CHART), "Secret", "memberlist")
    assert again["data"] != secret["data"]  # random at each fresh install (kept on upgrade through lookup)
    env = {e["name"]: e for e in _container(objects, "DaemonSet", "speaker")["env"]}
    assert env["METALLB_ML_SECRET_KEY"]["valueFrom"]["secretKeyRef"] == {
        "name": "memberlist",
        "key": "secretkey",
    }


# -- what each value set asks for ----------------------------------------------------------------------------


def test_layer2_mode_keeps_fast_takeover_and_has_no_bfd_ports(helm: Helm) -> None:
    objects = helm.template(CHART, values=L2_DEFAULT)
    speaker = _container(objects, "DaemonSet", "speaker")
    assert "--no-fast-takeover" not in speaker["args"]
    assert {p["name"] for p in speaker["ports"]} == {"monitoring", "memberlist-udp"}
    assert not _kinds(objects) & {"IPAddressPool", "L2Advertisement", "BGPAdvertisement", "BGPPeer"}


def test_bgp_mode_sets_the_speaker_up_for_bgp_and_makes_the_configuration(helm: Helm) -> None:
    objects = helm.template(CHART, values=BGP)
    speaker = _container(objects, "DaemonSet", "speaker")
    assert "--no-fast-takeover" in speaker["args"]
    ports = {p["name"]: (p["containerPort"], p["protocol"]) for p in speaker["ports"]}
    assert ports["bfd"] == (3784, "UDP")
    assert ports["bfd-multihop"] == (4784, "UDP")
    assert {o["kind"] for o in objects if o["kind"] == "ConfigMap"} == set()  # no excludel2 without layer 2
    assert _one(objects, "IPAddressPool", "public")["spec"] == {
        "addresses": ["203.0.113.0/28"],
        "autoAssign": True,
    }
    advertisement = _one(objects, "BGPAdvertisement", "metallb-py-bgp")
    assert advertisement["spec"] == {
        "ipAddressPools": ["public"],
        "localPref": 150,
        "communities": ["64512:100"],
    }
    peer = _one(objects, "BGPPeer", "tor")
    assert peer["apiVersion"] == "metallb.io/v1beta2"
    assert peer["spec"] == {"myASN": 64512, "peerASN": 64513, "peerAddress": "192.0.2.1"}
    assert "L2Advertisement" not in _kinds(objects)


def test_both_modes_make_both_advertisements(helm: Helm) -> None:
    objects = helm.template(CHART, values={**BGP, "mode": "both"})
    speaker = _container(objects, "DaemonSet", "speaker")
    assert "--no-fast-takeover" not in speaker["args"]
    assert "bfd" in {p["name"] for p in speaker["ports"]}
    assert _one(objects, "L2Advertisement", "metallb-py-layer2")["spec"] == {"ipAddressPools": ["public"]}
    assert _one(objects, "BGPAdvertisement", "metallb-py-bgp")["spec"]["ipAddressPools"] == ["public"]


def test_metrics_ports_and_service_monitors(helm: Helm) -> None:
    objects = helm.template(CHART, values=METRICS_ON)
    for component, kind, port in [("controller", "Deployment", 9472), ("speaker", "DaemonSet", 9473)]:
        container = _container(objects, kind, component)
        assert f"--metrics-port={port}" in container["args"]
        assert {"name": "monitoring", "containerPort": port, "protocol": "TCP"} in container["ports"]
        annotations = _one(objects, kind, component)["spec"]["template"]["metadata"]["annotations"]
        assert annotations == {"prometheus.io/scrape": "true", "prometheus.io/port": str(port)}
        service = _one(objects, "Service", f"{component}-monitoring")
        assert service["spec"]["ports"][0]["port"] == port
        assert service["spec"]["selector"] == {
            "app.kubernetes.io/name": "metallb-py",
            "app.kubernetes.io/component": component,
        }
        monitor = _one(objects, "ServiceMonitor", component)
        assert monitor["metadata"]["labels"]["release"] == "prometheus"
        assert monitor["spec"]["endpoints"][0]["interval"] == "15s"
        assert monitor["spec"]["selector"]["matchLabels"] == service["spec"]["selector"]


def test_service_monitors_are_off_by_default_and_metrics_can_be_off(helm: Helm) -> None:
    assert "ServiceMonitor" not in _kinds(helm.template(CHART))
    objects = helm.template(CHART, values={"metrics": {"enabled": False}})
    controller = _container(objects, "Deployment", "controller")
    assert "--metrics-port=0" in controller["args"]
    assert "ports" not in controller and "livenessProbe" not in controller
    assert "annotations" not in _one(objects, "Deployment", "controller")["spec"]["template"]["metadata"]
    speaker = _container(objects, "DaemonSet", "speaker")
    assert "--metrics-port=0" in speaker["args"]
    assert "monitoring" not in {p["name"] for p in speaker["ports"]}


def test_placement_resources_image_and_flags(helm: Helm) -> None:
    objects = helm.template(CHART, values=PLACED)
    deployment = _one(objects, "Deployment", "controller")
    pod = deployment["spec"]["template"]["spec"]
    controller = pod["containers"][0]
    assert deployment["spec"]["replicas"] == 3
    assert controller["image"] == "registry.example/metallb-py:0.1.0-test"
    assert pod["imagePullSecrets"] == [{"name": "regcred"}]
    assert controller["resources"] == PLACED["controller"]["resources"]
    assert pod["nodeSelector"] == PLACED["controller"]["nodeSelector"]
    assert pod["tolerations"] == PLACED["controller"]["tolerations"]
    assert {"--log-level=debug", "--lb-class=example.org/metallb-py", "--lease-duration=20"} <= set(
        controller["args"]
    )

    daemonset = _one(objects, "DaemonSet", "speaker")
    pod = daemonset["spec"]["template"]["spec"]
    speaker = pod["containers"][0]
    assert speaker["image"] == controller["image"]
    assert speaker["resources"] == PLACED["speaker"]["resources"]
    # Helm merges a map into the default: the Linux selector stays (`kubernetes.io/os: null` would drop it).
    assert pod["nodeSelector"] == {"kubernetes.io/os": "linux", "example.org/edge": "true"}
    assert pod["tolerations"] == PLACED["speaker"]["tolerations"]  # and not the control plane's
    assert {
        "--log-level=warning",
        "--lb-class=example.org/metallb-py",
        "--heartbeat-interval=0.02",
        "--heartbeat-timeout=0.08",
    } <= set(speaker["args"])


def test_the_speaker_tolerates_the_control_plane_beside_the_users_tolerations(helm: Helm) -> None:
    extra = {"key": "example.org/dedicated", "operator": "Exists"}
    objects = helm.template(CHART, values={"speaker": {"tolerations": [extra]}})
    tolerations = _one(objects, "DaemonSet", "speaker")["spec"]["template"]["spec"]["tolerations"]
    assert tolerations == [
        {"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"},
        extra,
    ]


def test_without_gossip_the_speaker_needs_no_secret(helm: Helm) -> None:
    objects = helm.template(CHART, values={"speaker": {"gossip": {"enabled": False}}})
    speaker = _container(objects, "DaemonSet", "speaker")
    assert "--no-gossip" in speaker["args"]
    assert "METALLB_ML_SECRET_KEY" not in {e["name"] for e in speaker["env"]}
    assert "Secret" not in _kinds(objects)


def test_a_digest_pins_the_image(helm: Helm) -> None:
    digest = "sha256:" + "ab" * 32
    objects = helm.template(CHART, values={"image": {"digest": digest}})
    assert (
        _container(objects, "Deployment", "controller")["image"] == f"ghcr.io/metallb-py/metallb-py@{digest}"
    )
