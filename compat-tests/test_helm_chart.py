"""The Helm chart (charts/jet, issue 11): `helm lint --strict` passes, and `helm template`
renders valid Kubernetes objects (strictly, against the API schemas of the oldest
Kubernetes the chart claims and the newest kubernetes-validate bundles): a StatefulSet
whose brokers find each other (seeds name every pod, bootstrap-expect matches the
replicas), advertise their stable DNS names, are probed on the admin port, keep their data
on a volume, run as the image's user, and read the gossip key from a Secret only. values.schema.json refuses bad values. No Kubernetes cluster here: the manifests are
checked as rendered, and the rendered pods' command and environment are run with the real
jet binary: one broker, then three (own loopback IPs, pod DNS names in a private
/etc/hosts; needs root for `unshare -m`) that find each other through the rendered seeds
and turn ready together once bootstrap-expect is met.

helm comes from run.sh (compat-tests/.tools/bin); a missing helm fails these tests unless
JET_SKIP_HELM_TESTS=1."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

import kproto as kp
from jetproc import free_port, jet_bin

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CHART = ROOT / "charts" / "jet"
RELEASE, NAMESPACE = "rel", "kafka"
FULLNAME, HEADLESS = "rel-jet", "rel-jet-headless"

if os.environ.get("JET_SKIP_HELM_TESTS") == "1":
    pytest.skip("JET_SKIP_HELM_TESTS=1", allow_module_level=True)


@pytest.fixture(scope="module")
def helm() -> str:
    found = shutil.which("helm") or str(HERE / ".tools" / "bin" / "helm")
    if not os.access(found, os.X_OK):
        pytest.fail("helm is not installed (run.sh installs it into compat-tests/.tools/bin; JET_SKIP_HELM_TESTS=1 skips)")
    return found


def template(helm: str, values: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """`helm template` with `values` given as a values file (on stdin)."""
    cmd = [helm, "template", RELEASE, str(CHART), "--namespace", NAMESPACE, "-f", "-"]
    r = subprocess.run(cmd, input=yaml.safe_dump(values or {}), capture_output=True, text=True, timeout=120)
    if check:
        assert r.returncode == 0, r.stderr
    return r


def render(helm: str, values: dict | None = None) -> list[dict]:
    return [d for d in yaml.safe_load_all(template(helm, values).stdout) if d]


def only(docs: list[dict], kind: str, name: str | None = None) -> dict:
    found = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(found) == 1, f"{kind} {name or ''}: {len(found)} rendered"
    return found[0]


def container(docs: list[dict]) -> dict:
    (c,) = only(docs, "StatefulSet")["spec"]["template"]["spec"]["containers"]
    return c


def env(docs: list[dict]) -> dict[str, dict]:
    return {e["name"]: e for e in container(docs)["env"]}


def port_number(c: dict, name_or_number) -> int:
    if isinstance(name_or_number, int):
        return name_or_number
    (p,) = [p for p in c["ports"] if p["name"] == name_or_number]
    return p["containerPort"]


def pod_host(i: int) -> str:
    """Pod i's name in the headless Service: what it advertises and gossips as a seed."""
    return f"{FULLNAME}-{i}.{HEADLESS}.{NAMESPACE}.svc.cluster.local"


# ------------------------------------------------------------------ lint and metadata


def test_lint_strict_with_default_and_every_ci_values_file(helm):
    r = subprocess.run([helm, "lint", "--strict", str(CHART)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert CI_VALUES, "charts/jet/ci/ has no values files"
    for f in CI_VALUES:
        r = subprocess.run([helm, "lint", "--strict", str(CHART), "-f", str(f)], capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, f"{f.name}: {r.stdout}{r.stderr}"


def test_app_version_is_the_crate_version():
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    crate = re.search(r'(?m)^version\s*=\s*"([^"]+)"', (ROOT / "Cargo.toml").read_text()).group(1)
    assert chart["apiVersion"] == "v2"
    assert chart["appVersion"] == crate


def test_every_value_is_documented():
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    readme = (ROOT / "charts" / "README.md").read_text()
    missing = [k for k in values if not re.search(rf"`{re.escape(k)}[`.]", readme)]
    assert not missing, f"charts/README.md does not document {missing}"


# The chart-testing values files (charts/jet/ci/, ct's convention) and the example small
# production setup; the five-broker one with racks, a LoadBalancer, hard anti-affinity and no
# persistence is the "other values" below.
CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml")) + [ROOT / "examples" / "production-values.yaml"]
OTHER_VALUES = yaml.safe_load((CHART / "ci" / "racks-5-replicas-values.yaml").read_text())


KUBE_MIN = "1.25.0"  # Chart.yaml kubeVersion


@pytest.mark.parametrize("kubernetes", [KUBE_MIN, kubernetes_validate.latest_version()])
def test_manifests_are_valid_kubernetes_objects(helm, kubernetes):
    """Strict validation against the API's schemas (unknown fields, wrong types) for the oldest
    Kubernetes the chart claims (Chart.yaml kubeVersion) and the newest kubernetes-validate has."""
    assert yaml.safe_load((CHART / "Chart.yaml").read_text())["kubeVersion"] == f">={KUBE_MIN}-0"
    for values in [None, *(yaml.safe_load(f.read_text()) for f in CI_VALUES)]:
        for doc in render(helm, values):
            if doc["apiVersion"].startswith("monitoring.coreos.com/"):
                continue  # the Prometheus Operator's CRD: no schema here
            try:
                kubernetes_validate.validate(doc, kubernetes, strict=True)
            except kubernetes_validate.ValidationError as e:
                pytest.fail(f"{doc['kind']} {doc['metadata']['name']} at {list(e.path)}: {e.message}")


# ------------------------------------------------------------------ the cluster


@pytest.mark.parametrize("replicas", [3, 5])
def test_every_pod_is_a_seed_and_bootstrap_expect_is_the_replicas(helm, replicas):
    docs = render(helm, {"replicas": replicas})
    sts = only(docs, "StatefulSet")
    e = env(docs)
    assert sts["spec"]["replicas"] == replicas
    assert sts["spec"]["podManagementPolicy"] == "Parallel", "all brokers must start to meet bootstrap-expect"
    assert sts["spec"]["serviceName"] == HEADLESS
    assert e["JET_BOOTSTRAP_EXPECT"]["value"] == str(replicas)
    assert e["JET_SEEDS"]["value"].split(",") == [f"{pod_host(i)}:7946" for i in range(replicas)]


def test_bootstrap_expect_can_be_lower_but_never_above_the_replicas(helm):
    assert env(render(helm, {"replicas": 5, "cluster": {"bootstrapExpect": 3}}))["JET_BOOTSTRAP_EXPECT"]["value"] == "3"
    r = template(helm, {"replicas": 3, "cluster": {"bootstrapExpect": 4}}, check=False)
    assert r.returncode != 0 and "bootstrapExpect" in r.stderr, r.stderr


def test_brokers_advertise_their_stable_dns_names(helm):
    docs = render(helm)
    names = list(env(docs))
    e = env(docs)
    assert e["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert e["POD_IP"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"
    assert e["JET_ADVERTISED_LISTENER"]["value"] == f"$(POD_NAME).{HEADLESS}.{NAMESPACE}.svc.cluster.local:9092"
    assert e["JET_GOSSIP_ADVERTISE"]["value"] == "$(POD_IP):7946"
    # Kubernetes expands $(VAR) only for variables defined earlier in the list.
    assert names.index("POD_NAME") < names.index("JET_ADVERTISED_LISTENER")
    assert names.index("POD_IP") < names.index("JET_GOSSIP_ADVERTISE")
    headless = only(docs, "Service", HEADLESS)["spec"]
    assert headless["clusterIP"] == "None" and headless["publishNotReadyAddresses"] is True


def test_the_node_id_is_the_pod_ordinal_and_an_empty_rack_is_none(helm, tmp_path):
    """Runs the container's own command and args with a stand-in for the jet binary."""
    fake = tmp_path / "jet"
    fake.write_text('#!/bin/sh\necho "node=$JET_NODE_ID rack=${JET_BROKER_RACK-unset} args=$*"\n')
    fake.chmod(0o755)

    def run(values: dict, pod: str, rack: str) -> str:
        c = container(render(helm, values))
        assert c["command"][:2] == ["/bin/sh", "-c"] and "exec /usr/local/bin/jet" in c["command"][2]
        argv = ["/bin/sh", "-c", c["command"][2].replace("/usr/local/bin/jet", str(fake)), *c["command"][3:], *c.get("args", [])]
        e = {"PATH": os.environ["PATH"], "POD_NAME": pod, "JET_BROKER_RACK": rack}
        return subprocess.run(argv, env=e, capture_output=True, text=True, check=True).stdout.strip()

    assert run({"rack": {"from": "zone"}}, "rel-jet-0", "") == "node=0 rack=unset args="
    extra = {"rack": {"from": "zone"}, "extraArgs": ["--set", "a=b"]}
    assert run(extra, "my-kafka-jet-12", "eu-west-1a") == "node=12 rack=eu-west-1a args=--set a=b"


def test_cluster_id_is_the_same_on_every_upgrade_and_can_be_set(helm):
    first = env(render(helm))["JET_CLUSTER_ID"]["value"]
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", first), first
    assert env(render(helm, {"replicas": 4}))["JET_CLUSTER_ID"]["value"] == first, "a broker refuses another cluster id"
    assert env(render(helm, {"cluster": {"id": "MkU3OEVBNTcwNTJENDM2Qk"}}))["JET_CLUSTER_ID"]["value"] == "MkU3OEVBNTcwNTJENDM2Qk"


def test_every_environment_variable_is_one_jet_reads(helm):
    declared = set()
    for src in [ROOT / "src" / "config.rs", *(ROOT / "src" / "config").glob("*.rs")]:
        declared |= set(re.findall(r'env = "(JET_[A-Z_]+)"', src.read_text()))
    values = {"rack": {"from": "node"}, "gossipKey": {"existingSecret": "s"}}
    used = {n for n in env(render(helm, values)) if n.startswith("JET_")} | {"JET_NODE_ID"}
    assert used - declared == set(), f"not a jet setting: {sorted(used - declared)}"


# ------------------------------------------------------------------ ports and probes


def test_ports_reach_the_listeners_and_services(helm):
    ports = {"kafka": 19092, "raft": 19093, "gossip": 17946, "admin": 19644}
    for values, want in [(None, {"kafka": 9092, "raft": 9093, "gossip": 7946, "admin": 9644}), ({"ports": ports}, ports)]:
        docs = render(helm, values)
        c, e = container(docs), env(docs)
        by_name = {p["name"]: (p["containerPort"], p["protocol"]) for p in c["ports"]}
        assert by_name == {
            "kafka": (want["kafka"], "TCP"), "raft": (want["raft"], "TCP"), "admin": (want["admin"], "TCP"),
            "gossip-tcp": (want["gossip"], "TCP"), "gossip-udp": (want["gossip"], "UDP"),
        }
        assert e["JET_LISTEN"]["value"] == f"0.0.0.0:{want['kafka']}"
        assert e["JET_RAFT_LISTEN"]["value"] == f"0.0.0.0:{want['raft']}"
        assert e["JET_GOSSIP_LISTEN"]["value"] == f"0.0.0.0:{want['gossip']}"
        assert e["JET_ADMIN_LISTEN"]["value"] == f"0.0.0.0:{want['admin']}"
        assert e["JET_ADVERTISED_LISTENER"]["value"].endswith(f":{want['kafka']}")
        assert all(s.endswith(f":{want['gossip']}") for s in e["JET_SEEDS"]["value"].split(","))
        headless = only(docs, "Service", HEADLESS)["spec"]["ports"]
        assert {(p["port"], p["protocol"]) for p in headless} == set(by_name.values())
        assert all(port_number(c, p["targetPort"]) == p["port"] for p in headless)
        client = only(docs, "Service", FULLNAME)["spec"]
        assert client["type"] == "ClusterIP"
        assert {p["name"]: (p["port"], port_number(c, p["targetPort"])) for p in client["ports"]} == {
            "kafka": (want["kafka"], want["kafka"]), "admin": (want["admin"], want["admin"])}


def test_probes_ask_the_admin_port(helm):
    for admin in [9644, 19644]:
        docs = render(helm, {"ports": {"kafka": 9092, "raft": 9093, "gossip": 7946, "admin": admin}})
        c = container(docs)
        paths = {kind: c[kind]["httpGet"]["path"] for kind in ("startupProbe", "livenessProbe", "readinessProbe")}
        assert paths == {"startupProbe": "/livez", "livenessProbe": "/livez", "readinessProbe": "/readyz"}
        for kind in paths:
            assert port_number(c, c[kind]["httpGet"]["port"]) == admin, kind
        assert env(docs)["JET_ADMIN_LISTEN"]["value"].endswith(f":{admin}")
        # The drain (10 s of in-flight requests, then flush and gossip leave) fits the grace period.
        assert only(docs, "StatefulSet")["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] >= 30


# ------------------------------------------------------------------ storage, PDB, security


def test_data_is_on_a_persistent_volume_claim(helm):
    docs = render(helm, {"persistence": {"size": "50Gi", "storageClass": "fast"}})
    sts, c = only(docs, "StatefulSet"), container(docs)
    (claim,) = sts["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["resources"]["requests"]["storage"] == "50Gi"
    assert claim["spec"]["storageClassName"] == "fast"
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    mount = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    assert mount[claim["metadata"]["name"]] == env(docs)["JET_DATA_DIR"]["value"] == "/var/lib/jet"
    assert "storageClassName" not in only(render(helm), "StatefulSet")["spec"]["volumeClaimTemplates"][0]["spec"]
    no_class = only(render(helm, {"persistence": {"storageClass": "-"}}), "StatefulSet")
    assert no_class["spec"]["volumeClaimTemplates"][0]["spec"]["storageClassName"] == ""
    ephemeral = only(render(helm, {"persistence": {"enabled": False}}), "StatefulSet")["spec"]
    assert "volumeClaimTemplates" not in ephemeral
    assert {"name": "data", "emptyDir": {}} in ephemeral["template"]["spec"]["volumes"]


def test_statefulset_and_services_select_the_broker_pods(helm):
    docs = render(helm, {"podLabels": {"team": "data"}})
    sts = only(docs, "StatefulSet")
    pod_labels = sts["spec"]["template"]["metadata"]["labels"]
    assert pod_labels["team"] == "data"
    assert sts["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    for name in [HEADLESS, FULLNAME]:
        assert only(docs, "Service", name)["spec"]["selector"].items() <= pod_labels.items(), name


def test_pod_disruption_budget_selects_the_brokers(helm):
    docs = render(helm)
    pdb = only(docs, "PodDisruptionBudget")
    pod_labels = only(docs, "StatefulSet")["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["maxUnavailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert not [d for d in render(helm, {"podDisruptionBudget": {"enabled": False}}) if d["kind"] == "PodDisruptionBudget"]


def test_runs_as_the_images_user_with_a_read_only_root(helm):
    dockerfile = (ROOT / "Dockerfile").read_text()
    uid = int(re.findall(r"(?m)^USER\s+(\d+)", dockerfile)[-1])
    assert re.search(r"JET_DATA_DIR=/var/lib/jet", dockerfile)
    docs = render(helm)
    pod = only(docs, "StatefulSet")["spec"]["template"]["spec"]
    sc = container(docs)["securityContext"]
    assert pod["securityContext"]["runAsUser"] == uid and pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["fsGroup"] == uid, "the volume must be writable by the image's user"
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert pod["automountServiceAccountToken"] is False


# ------------------------------------------------------------------ gossip key


def test_generated_gossip_key_is_only_in_a_secret(helm):
    out = template(helm).stdout
    docs = [d for d in yaml.safe_load_all(out) if d]
    secret = only(docs, "Secret")
    ref = env(docs)["JET_GOSSIP_KEY"]
    assert "value" not in ref
    assert ref["valueFrom"]["secretKeyRef"] == {"name": secret["metadata"]["name"], "key": "gossip-key"}
    key = base64.b64decode(secret["data"]["gossip-key"]).decode()  # what jet reads from the env
    assert len(base64.b64decode(key, validate=True)) == 32, "an AES-256 key"
    assert key not in out, "the key itself is rendered in plain text"
    assert base64.b64decode(secret["data"]["gossip-key"]) != base64.b64decode(only(render(helm), "Secret")["data"]["gossip-key"])


def test_existing_gossip_key_secret_is_referenced_not_rendered(helm):
    docs = render(helm, {"gossipKey": {"existingSecret": "jet-gossip", "secretKey": "key"}})
    assert not [d for d in docs if d["kind"] == "Secret"]
    assert env(docs)["JET_GOSSIP_KEY"]["valueFrom"]["secretKeyRef"] == {"name": "jet-gossip", "key": "key"}
    plain = render(helm, {"gossipKey": {"generate": False}})
    assert "JET_GOSSIP_KEY" not in env(plain) and not [d for d in plain if d["kind"] == "Secret"]


# ------------------------------------------------------------------ config, rack, monitoring


def test_config_becomes_server_properties_with_exact_numbers(helm):
    config = {"log.segment.bytes": 1073741824, "log.cleaner.min.cleanable.ratio": 0.5,
              "auto.create.topics.enable": False, "compression.type": "lz4", "log.retention.ms": -1}
    docs = render(helm, {"config": config})
    props = only(docs, "ConfigMap")["data"]["server.properties"]
    lines = {line.strip() for line in props.splitlines() if line.strip()}
    assert lines == {"log.segment.bytes=1073741824", "log.cleaner.min.cleanable.ratio=0.5",
                     "auto.create.topics.enable=false", "compression.type=lz4", "log.retention.ms=-1"}
    c = container(docs)
    mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    assert env(docs)["JET_CONFIG"]["value"] == mounts["config"] + "/server.properties"
    checksum = lambda d: only(d, "StatefulSet")["spec"]["template"]["metadata"]["annotations"]["checksum/config"]  # noqa: E731
    assert checksum(docs) != checksum(render(helm)), "a config change must roll the pods"
    for managed in ["node.id", "listeners", "advertised.listeners", "log.dirs", "broker.rack"]:
        r = template(helm, {"config": {managed: "x"}}, check=False)
        assert r.returncode != 0 and managed in r.stderr, (managed, r.stderr)


def test_rack_from_zone_label_or_node_name(helm):
    assert "JET_BROKER_RACK" not in env(render(helm))
    zone = env(render(helm, {"rack": {"from": "zone"}}))["JET_BROKER_RACK"]["valueFrom"]["fieldRef"]["fieldPath"]
    assert zone == "metadata.labels['topology.kubernetes.io/zone']"
    assert env(render(helm, {"rack": {"from": "node"}}))["JET_BROKER_RACK"]["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"


def test_service_monitor_is_optional_and_scrapes_metrics_of_every_broker(helm):
    assert not [d for d in render(helm) if d["kind"] == "ServiceMonitor"]
    docs = render(helm, {"serviceMonitor": {"enabled": True, "labels": {"release": "prom"}}})
    sm = only(docs, "ServiceMonitor")
    assert sm["metadata"]["labels"]["release"] == "prom"
    selected = [s for s in docs if s["kind"] == "Service"
                and sm["spec"]["selector"]["matchLabels"].items() <= s["metadata"]["labels"].items()]
    assert [s["metadata"]["name"] for s in selected] == [HEADLESS], "the Service that lists every broker"
    (endpoint,) = sm["spec"]["endpoints"]
    assert endpoint["path"] == "/metrics"
    assert endpoint["port"] in {p["name"] for p in selected[0]["spec"]["ports"] if p["port"] == 9644}


def notes(helm: str, values: dict | None = None) -> str:
    """NOTES.txt as `helm install` prints it (helm template does not render it)."""
    cmd = [helm, "install", RELEASE, str(CHART), "--namespace", NAMESPACE, "--dry-run=client", "-f", "-"]
    r = subprocess.run(cmd, input=yaml.safe_dump(values or {}), capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return r.stdout.split("NOTES:", 1)[1]


def test_notes_show_how_to_connect_with_kcat(helm):
    text = notes(helm)
    kcat = [line for line in text.splitlines() if "kcat" in line and " -b " in line]
    assert len(kcat) == 3, text  # list, produce, consume
    assert all(f"-b {pod_host(0)}:9092" in line for line in kcat), kcat
    for i in range(3):
        assert f"{pod_host(i)}:9092" in text
    assert f"{FULLNAME}.{NAMESPACE}.svc.cluster.local:9092" in text
    assert "WARNING" not in text
    unencrypted = notes(helm, {"gossipKey": {"generate": False}, "persistence": {"enabled": False}})
    assert "gossip is not encrypted" in unencrypted and "emptyDir" in unencrypted, unencrypted


def hook_test_pods(docs: list[dict]) -> dict[str, dict]:
    """The `helm test` pods, by name."""
    return {
        d["metadata"]["name"]: d
        for d in docs
        if d["kind"] == "Pod" and d["metadata"].get("annotations", {}).get("helm.sh/hook") == "test"
    }


def test_helm_test_pods_run_the_commands_the_notes_print(helm):
    docs = render(helm)
    pods = hook_test_pods(docs)
    assert sorted(pods) == [f"{FULLNAME}-test-jet-cli", f"{FULLNAME}-test-kcat"]
    for pod in pods.values():
        assert pod["metadata"]["namespace"] == NAMESPACE
        assert pod["spec"]["restartPolicy"] == "Never"
    (kcat,) = pods[f"{FULLNAME}-test-kcat"]["spec"]["containers"]
    (cli,) = pods[f"{FULLNAME}-test-jet-cli"]["spec"]["containers"]
    text = notes(helm)
    # The image NOTES.txt runs kcat from, and each kcat command it prints (what follows the
    # broker address: list, produce, consume from the beginning).
    assert f"--image={kcat['image']} " in text
    script = kcat["command"][2]
    for line in [ln for ln in text.splitlines() if "kcat" in ln and " -b " in ln]:
        flags = line.split(f"-b {pod_host(0)}:9092", 1)[1].replace("-t demo", '-t "$TOPIC"').strip()
        assert f'kcat -b "$BROKER" {flags}' in script, (flags, script)
    assert {e["name"]: e["value"] for e in kcat["env"]}["BROKER"] == f"{pod_host(0)}:9092"
    assert "jet cluster info" in text and "jet cluster info" in cli["command"][2]
    assert cli["image"] == container(docs)["image"]
    assert hook_test_pods(render(helm, {"tests": {"enabled": False}})) == {}


# ------------------------------------------------------------------ access from outside

NODEPORT = {"external": {"enabled": True}}


def test_external_access_is_a_second_listener_and_a_service_per_broker(helm):
    docs = render(helm, NODEPORT)
    c, e = container(docs), env(docs)
    assert port_number(c, "kafka-external") == 9094
    assert e["JET_LISTEN"]["value"] == "PLAINTEXT://0.0.0.0:9092,EXTERNAL://0.0.0.0:9094"
    assert e["HOST_IP"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.hostIP"
    properties = only(docs, "ConfigMap")["data"]["server.properties"].splitlines()
    assert "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,EXTERNAL:PLAINTEXT" in properties
    assert "inter.broker.listener.name=PLAINTEXT" in properties
    for i in range(3):
        svc = only(docs, "Service", f"{FULLNAME}-{i}-external")["spec"]
        assert svc["type"] == "NodePort" and svc["externalTrafficPolicy"] == "Local"
        assert svc["selector"]["statefulset.kubernetes.io/pod-name"] == f"{FULLNAME}-{i}"
        (p,) = svc["ports"]
        assert (p["port"], port_number(c, p["targetPort"]), p["nodePort"]) == (9094, 9094, 31092 + i)
    assert not [d for d in render(helm) if d["metadata"]["name"].endswith("-external")], "off by default"
    lb = render(helm, {"external": {"enabled": True, "type": "LoadBalancer", "domain": "kafka.example.com",
                                    "loadBalancerSourceRanges": ["10.0.0.0/8"]}})
    svc = only(lb, "Service", f"{FULLNAME}-0-external")["spec"]
    assert svc["type"] == "LoadBalancer" and svc["loadBalancerSourceRanges"] == ["10.0.0.0/8"] and "nodePort" not in svc["ports"][0]


@pytest.mark.parametrize("values, message", [
    ({"external": {"enabled": True, "type": "LoadBalancer"}}, "needs external.addresses"),
    ({"external": {"enabled": True, "addresses": ["a", "b"]}}, "2 entries for 3 brokers"),
    ({"external": {"enabled": True, "port": 9093}}, "is also ports.raft"),
    ({"external": {"enabled": True, "nodePortBase": 32766}}, "past node port 32767"),
    ({"config": {"listener.security.protocol.map": "X:SSL"}}, "set by the chart"),
])
def test_external_access_that_cannot_work_is_refused_at_render_time(helm, values, message):
    r = template(helm, values, check=False)
    assert r.returncode != 0 and message in r.stderr, r.stderr


def advertised(helm, tmp_path, values: dict, pod: str, host_ip: str) -> str:
    """JET_ADVERTISED_LISTENER as the container's own command hands it to jet (a stand-in)."""
    fake = tmp_path / "jet"
    fake.write_text('#!/bin/sh\nprintf %s "$JET_ADVERTISED_LISTENER"\n')
    fake.chmod(0o755)
    c = container(render(helm, values))
    e = {"PATH": os.environ["PATH"]}
    field = {"metadata.name": pod, "status.podIP": "10.9.9.9", "status.hostIP": host_ip}
    for v in c["env"]:
        if "value" in v:
            e[v["name"]] = expand(v["value"], e)
        elif "fieldRef" in v.get("valueFrom", {}):
            e[v["name"]] = field[v["valueFrom"]["fieldRef"]["fieldPath"]]
    argv = ["/bin/sh", "-c", c["command"][2].replace("/usr/local/bin/jet", str(fake)), *c["command"][3:]]
    return subprocess.run(argv, env=e, capture_output=True, text=True, check=True).stdout


def test_each_broker_advertises_its_own_external_address(helm, tmp_path):
    internal = f"PLAINTEXT://{pod_host(2)}:9092"
    assert advertised(helm, tmp_path, NODEPORT, f"{FULLNAME}-2", "10.1.2.3") == f"{internal},EXTERNAL://10.1.2.3:31094"
    addresses = {"external": {"enabled": True, "type": "LoadBalancer", "addresses": ["203.0.113.1", "203.0.113.2", "fd00::3"]}}
    assert advertised(helm, tmp_path, addresses, f"{FULLNAME}-2", "10.1.2.3") == f"{internal},EXTERNAL://[fd00::3]:9094"
    domain = {"external": {"enabled": True, "domain": "kafka.example.com", "nodePortBase": 30500}}
    assert advertised(helm, tmp_path, domain, f"{FULLNAME}-2", "10.1.2.3") == (
        f"{internal},EXTERNAL://{FULLNAME}-2.kafka.example.com:30502")
    assert advertised(helm, tmp_path, NODEPORT, f"{FULLNAME}-0", "fd00::7") == (
        f"PLAINTEXT://{pod_host(0)}:9092,EXTERNAL://[fd00::7]:31092")
    # A broker beyond the addresses (after `kubectl scale`) refuses to start.
    with pytest.raises(subprocess.CalledProcessError) as refused:
        advertised(helm, tmp_path, addresses, f"{FULLNAME}-3", "10.1.2.3")
    assert "no external address for broker 3" in refused.value.stderr
    # Each LoadBalancer asks for its broker's address.
    docs = render(helm, addresses)
    assert [only(docs, "Service", f"{FULLNAME}-{i}-external")["spec"]["loadBalancerIP"] for i in range(3)] == (
        ["203.0.113.1", "203.0.113.2", "fd00::3"])


def test_notes_and_helm_tests_reach_the_brokers_from_outside(helm):
    text = notes(helm, OTHER_VALUES)
    for i in range(5):
        assert f"203.0.113.1{i}:9094" in text
    external = [line for line in text.splitlines() if line.lstrip().startswith(("kcat", "echo hello | kcat"))]
    assert len(external) == 3 and all("-b 203.0.113.10:9094" in line for line in external), external
    nodeport = notes(helm, NODEPORT)
    assert f"\"$(kubectl get pod {FULLNAME}-0 -n {NAMESPACE} -o jsonpath='{{.status.hostIP}}'):31092\" -L" in nodeport
    pods = hook_test_pods(render(helm, NODEPORT))
    (kcat,) = pods[f"{FULLNAME}-test-kcat-external"]["spec"]["containers"]
    broker = {e["name"]: e["value"] for e in kcat["env"]}["BROKER"]
    assert broker == f"{FULLNAME}-0-external.{NAMESPACE}.svc.cluster.local:9094"
    assert kcat["command"] == pods[f"{FULLNAME}-test-kcat"]["spec"]["containers"][0]["command"], "the same commands"


# ------------------------------------------------------------------ values.schema.json


@pytest.mark.parametrize("values, path", [
    ({"replicas": 0}, "/replicas"),
    ({"replicas": "3"}, "/replicas"),
    ({"ports": {"kafka": 70000, "raft": 9093, "gossip": 7946, "admin": 9644}}, "/ports/kafka"),
    ({"rack": {"from": "region"}}, "/rack/from"),
    ({"persistence": {"size": "10 GB"}}, "/persistence/size"),
    ({"logFormat": "xml"}, "/logFormat"),
    ({"gossipKey": {"generate": "yes"}}, "/gossipKey/generate"),
    ({"replica": 3}, "replica"),
    ({"external": {"type": "ClusterIP"}}, "/external/type"),
    ({"external": {"nodePortBase": 80}}, "/external/nodePortBase"),
    ({"external": {"addresses": ["a b"]}}, "/external/addresses/0"),
    ({"external": {"addresses": ["203.0.113.1:9094"]}}, "/external/addresses/0"),
    ({"external": {"addresses": ["*"]}}, "/external/addresses/0"),
])
def test_schema_refuses_bad_values(helm, values, path):
    r = template(helm, values, check=False)
    assert r.returncode != 0, f"accepted {values}"
    assert path in r.stderr, r.stderr


# ------------------------------------------------------------------ with the real binary


def expand(value: str, known: dict[str, str]) -> str:
    """Kubernetes' $(VAR) expansion of earlier variables."""
    return re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: known.get(m.group(1), m.group(0)), value)


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError as e:
        return 0, str(e)


def metadata(host: str, port: int, topic: str) -> dict:
    with socket.create_connection((host, port), timeout=10) as s:
        s.settimeout(10)
        s.sendall(kp.metadata_v1(1, [topic]))
        return kp.parse_metadata_v1(kp.recv_frame(s))


def wait(cond, what: str, deadline_s: float = 60) -> None:
    deadline = time.monotonic() + deadline_s
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


class Pod:
    """A broker pod of the rendered StatefulSet, run here: the container's command, args and
    environment as the kubelet gives them (downward API, Secret, $(VAR) expansion), with
    directories for its volume and ConfigMap. With `hosts`, the pod gets IP `ip` as its own:
    wildcard binds become `ip` (a pod has its own network namespace), and it runs in a mount
    namespace whose /etc/hosts resolves the pods' DNS names, as cluster DNS would."""

    def __init__(self, jet: Path, docs: list[dict], i: int, ip: str, tmp: Path, hosts: Path | None = None):
        c = container(docs)
        self.dir = tmp / f"pod-{i}"
        self.dir.mkdir()
        (self.dir / "server.properties").write_text(only(docs, "ConfigMap")["data"]["server.properties"])
        self.key = base64.b64decode(only(docs, "Secret")["data"]["gossip-key"]).decode()
        field = {"metadata.name": f"{FULLNAME}-{i}", "status.podIP": ip, "status.hostIP": ip}
        env = {"PATH": os.environ["PATH"]}
        for e in c["env"]:
            if "value" in e:
                env[e["name"]] = expand(e["value"], env)
            elif "fieldRef" in e["valueFrom"]:
                env[e["name"]] = field[e["valueFrom"]["fieldRef"]["fieldPath"]]
            else:
                env[e["name"]] = self.key
        env["JET_DATA_DIR"] = str(self.dir / "data")  # the volume
        env["JET_CONFIG"] = str(self.dir / "server.properties")  # the ConfigMap
        if hosts:
            env = {k: v.replace("0.0.0.0:", f"{ip}:") for k, v in env.items()}
        self.env = env
        script = c["command"][2].replace("/usr/local/bin/jet", str(jet))
        argv = ["/bin/sh", "-c", script, *c["command"][3:], *c.get("args", [])]
        if hosts:
            argv = ["unshare", "-m", "--", "/bin/sh", "-c", 'mount --bind "$0" /etc/hosts && exec "$@"', str(hosts), *argv]
        self.admin = f"http://{ip}:{env['JET_ADMIN_LISTEN'].rsplit(':', 1)[1]}"
        self.grace = only(docs, "StatefulSet")["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        self.log_file = (self.dir / "jet.log").open("w")
        self.proc = subprocess.Popen(argv, env=env, stdout=self.log_file, stderr=subprocess.STDOUT)

    def log(self) -> str:
        return (self.dir / "jet.log").read_text()

    def readyz(self) -> tuple[int, str]:
        assert self.proc.poll() is None, f"exited {self.proc.returncode}\n{self.log()}"
        return get(self.admin + "/readyz")

    def cluster(self) -> dict:
        """/v1/cluster; {} before the admin server answers."""
        assert self.proc.poll() is None, f"exited {self.proc.returncode}\n{self.log()}"
        code, body = get(self.admin + "/v1/cluster")
        return json.loads(body) if code == 200 else {}

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=self.grace)
        self.log_file.close()
        return code


def needs_jet() -> Path:
    jet = jet_bin()
    if not jet.exists() or os.environ.get("JET_BOOTSTRAP"):
        pytest.skip("needs the jet binary")
    return jet


def test_jet_starts_from_the_rendered_pod_spec(helm, tmp_path):
    """One broker from the rendered command and environment: Jet accepts every setting, turns
    ready, reports the pod's node id, cluster id and advertised name, applies the ConfigMap's
    server.properties, and drains on SIGTERM."""
    jet = needs_jet()
    ports = {"kafka": free_port(), "raft": free_port(), "gossip": free_port(), "admin": free_port()}
    docs = render(helm, {"replicas": 1, "ports": ports, "config": {"num.partitions": 2}})
    pod = Pod(jet, docs, 0, "127.0.0.1", tmp_path)
    try:
        wait(lambda: pod.readyz()[0] == 200, "/readyz")
        assert get(pod.admin + "/livez")[0] == 200
        status = pod.cluster()
        assert status["node_id"] == 0
        assert status["cluster_id"] == pod.env["JET_CLUSTER_ID"]
        assert status["listeners"]["advertised"] == f"{pod_host(0)}:{ports['kafka']}"
        assert status["gossip"] is not None, status
        # num.partitions=2 from server.properties applies to an auto-created topic.
        partitions = lambda: [len(parts) for *_, parts in metadata("127.0.0.1", ports["kafka"], "helm-smoke")["topics"]]  # noqa: E731
        wait(lambda: partitions() == [2], "an auto-created topic with num.partitions=2", 30)
        assert metadata("127.0.0.1", ports["kafka"], "helm-smoke")["brokers"] == [(0, pod_host(0), ports["kafka"], None)]
    finally:
        code = pod.stop()
    assert code == 0, pod.log()
    assert pod.key not in pod.log(), "the gossip key was logged"
    assert "gossip is not encrypted" not in pod.log()


def test_three_rendered_pods_form_one_gossip_cluster(helm, tmp_path):
    """Three brokers from the rendered StatefulSet (own IPs 127.0.0.11-13, pod DNS names in
    /etc/hosts), with external access through load balancers at the pods' IPs: with two of
    them up neither is ready (bootstrap-expect 3); once the third starts all three are, each
    lists all three under their advertised names, an EXTERNAL listener under their external
    addresses, and every `helm test` pod's script passes."""
    jet = needs_jet()
    probe = subprocess.run(["unshare", "-m", "--", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"needs a mount namespace (unshare -m, root): {probe.stderr.decode().strip()}")
    ips = [f"127.0.0.{11 + i}" for i in range(3)]
    ports = {"kafka": free_port(), "raft": free_port(), "gossip": free_port(), "admin": free_port()}
    # External access through "load balancers" at the pods' own IPs, on the EXTERNAL port.
    ext = free_port()
    external = {"enabled": True, "type": "LoadBalancer", "addresses": ips, "port": ext}
    docs = render(helm, {"replicas": 3, "ports": ports, "external": external})
    hosts = tmp_path / "hosts"
    # The bootstrap Service's name goes to the first pod, as the Service would send it to
    # one; broker 0's external Service to broker 0.
    service = f"{FULLNAME}.{NAMESPACE}.svc.cluster.local"
    external_service = f"{FULLNAME}-0-external.{NAMESPACE}.svc.cluster.local"
    hosts.write_text(
        "127.0.0.1 localhost\n" + "".join(f"{ip} {pod_host(i)}\n" for i, ip in enumerate(ips))
        + f"{ips[0]} {service}\n{ips[0]} {external_service}\n"
    )
    expected = [(i, pod_host(i)) for i in range(3)]
    pods = [Pod(jet, docs, i, ips[i], tmp_path, hosts) for i in range(2)]
    try:
        wait(lambda: all(len(p.cluster().get("brokers", [])) == 2 for p in pods), "two brokers gossiping")
        for p in pods:
            code, body = p.readyz()
            assert code == 503 and "bootstrap-expect 3" in body, (code, body)
        pods.append(Pod(jet, docs, 2, ips[2], tmp_path, hosts))
        wait(lambda: all(p.readyz()[0] == 200 for p in pods), "all three ready")
        for p in pods:
            assert sorted((b["node_id"], b["host"]) for b in p.cluster()["brokers"]) == expected
        md = metadata(ips[1], ports["kafka"], "helm-three")
        assert sorted(md["brokers"]) == [(i, host, ports["kafka"], None) for i, host in expected]
        # Through an EXTERNAL listener, every broker by its external address.
        md = metadata(ips[2], ext, "helm-three")
        assert sorted(md["brokers"]) == [(i, ips[i], ext, None) for i in range(3)]
        # `helm test`: each test pod's script, run as its container would (its environment,
        # the cluster's names; kcat and jet from this machine).
        for name, pod in hook_test_pods(docs).items():
            (c,) = pod["spec"]["containers"]
            bin_dir = tmp_path / "bin"
            bin_dir.mkdir(exist_ok=True)
            if not (bin_dir / "jet").exists():
                (bin_dir / "jet").symlink_to(jet)
            env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", **{e["name"]: e["value"] for e in c["env"]}}
            argv = ["unshare", "-m", "--", "/bin/sh", "-c", 'mount --bind "$0" /etc/hosts && exec "$@"', str(hosts), *c["command"]]
            r = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
            assert r.returncode == 0, f"helm test pod {name} failed:\n{r.stdout}\n{r.stderr}"
    finally:
        codes = [p.stop() for p in pods]
    assert codes == [0] * len(pods), "\n".join(p.log() for p in pods)
