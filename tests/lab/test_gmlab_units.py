"""Unit tests of the lab's pure parts (no root needed): the YAML reader/writer, manifest
checks, naming and readiness rules, and the nft rules it renders.

    /usr/bin/python3 -m pytest -v tests/lab/test_gmlab_units.py
"""

import glob
import json
import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from gmlab import cluster, configdir, kubeproxy, manifest, state, topology, workloads  # noqa: E402,E501
from gmlab import yamlish  # noqa: E402
from gmlab.util import LabError  # noqa: E402

# The shared conformance manifests sit next to the repository (../shared) on dev machines.
def _conformance_dir():
    """GM_CONFORMANCE_MANIFESTS, else ../shared next to the repository, else /work/shared."""
    for d in (os.environ.get("GM_CONFORMANCE_MANIFESTS"),
              os.path.join(HERE, "..", "..", "..", "shared", "conformance", "gateway-api",
                           "manifests"),
              "/work/shared/conformance/gateway-api/manifests"):
        if d and os.path.isdir(d):
            return d
    return None


CONFORMANCE = sorted(glob.glob(os.path.join(_conformance_dir() or "/nonexistent", "*.yaml")))


def values(text):
    return [yamlish.plain(v) for _, v in yamlish.load_all(text)]


@pytest.mark.parametrize("text, expected", [
    ("a: 1\nb: [1, 2, {c: d, e: 'f g'}]\n", {"a": 1, "b": [1, 2, {"c": "d", "e": "f g"}]}),
    ('c: "x\\ty\\u00e9"\n', {"c": "x\ty\u00e9"}),
    ("k: |\n  line1\n   line2\n\n  line3\n", {"k": "line1\n line2\n\nline3\n"}),
    ("j: >-\n  folded\n  text\n\n  para\n", {"j": "folded text\npara"}),
    ("s: |+\n  keep\n\nt: x\n", {"s": "keep\n\n", "t": "x"}),
    ("- a\n- - b\n  - c\n- k: v\n  k2: v2\n-\n  nested: 1\n",
     ["a", ["b", "c"], {"k": "v", "k2": "v2"}, {"nested": 1}]),
    ("key: value # comment\n# full line\nurl: http://x:80/y\nempty:\nq: 'it''s'\n",
     {"key": "value", "url": "http://x:80/y", "empty": None, "q": "it's"}),
    ("multi: this is\n  continued\n  here\nnext: 2\n", {"multi": "this is continued here",
                                                       "next": 2}),
    ('dq: "a\n  b\\\n  c"\n', {"dq": "a bc"}),
    ('{"apiVersion": "v1",\n "kind": "Namespace",\n "metadata": {"name": "x"}}\n',
     {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}}),
    ("a:\n- 1\n- 2\nb: !!str 3\nc: ~\nd: 0x1f\ne: 1.5\nf: true\ng: yes\n",
     {"a": [1, 2], "b": "3", "c": None, "d": 31, "e": 1.5, "f": True, "g": "yes"}),
    ("x: {}\ny: []\nz: {a: [], b: {}}\n", {"x": {}, "y": [], "z": {"a": [], "b": {}}}),
])
def test_reader(text, expected):
    assert values(text) == [expected]


def test_documents_and_lines():
    docs = yamlish.load_all("--- # first\na: 1\n...\n---\n\n# c\nb:\n  c: 2\n---\n")
    assert [(line, yamlish.plain(v)) for line, v in docs] == [(2, {"a": 1}),
                                                              (7, {"b": {"c": 2}})]
    assert yamlish.locate(docs[1][1], ["b", "c"]) == 8


@pytest.mark.parametrize("text, where, message", [
    ("a: 1\n b: 2\n", "f.yaml:2:", "cannot follow"),
    ("a: [1, 2\n", "f.yaml:", "unterminated flow collection"),
    ("a: 'x\n", "f.yaml:1:4", "unterminated quoted string"),
    ("a: &x 1\n", "f.yaml:1:4", "anchors"),
    ("- a\nb: 1\n", "f.yaml:2:1", "unexpected content"),
    ("a: 1\na: 2\n", "f.yaml:2:1", "duplicate key"),
    ("a:\n\t- x\n", "f.yaml:2:1", "tab"),
    ("a: b: c\n", "f.yaml:1:4", "cannot contain ': '"),
])
def test_reader_errors(text, where, message):
    with pytest.raises(yamlish.YamlError) as e:
        yamlish.load_all(text, "f.yaml")
    assert str(e.value).startswith(where) and message in str(e.value), str(e.value)


@pytest.mark.parametrize("value", [
    {"s": ["yes", "no", "on", "1", "1.5", "0x10", "true", "null", "", " pad", "a: b", "#x",
           "-x", "- x", "198.18.1.1", "1:20", "1_000", "x #y", "multi\nline", "é", "*", "&a",
           "!t", "[x", "{x", "'q", '"q', "%x", "@x", "`x", "|", ">", "?", "--port=8080",
           "/cert.crt", "a,b", "k=v", "ok"]},
    {"n": [0, -1, 1.5, True, False, None], "e": {}, "l": [], "nest": [[1, [2]], {"a": [{}]}]},
])
def test_writer_round_trip(value):
    text = yamlish.dump(value)
    assert values(text) == [value], text
    yaml = pytest.importorskip("yaml")      # libyaml-compatible reader, as the daemons use
    assert yaml.safe_load(text) == value, text


@pytest.mark.skipif(not CONFORMANCE, reason="conformance manifests not found")
def test_conformance_manifests_parse_like_pyyaml():
    yaml = pytest.importorskip("yaml")
    for f in CONFORMANCE:
        with open(f) as fh:
            text = fh.read()
        assert values(text) == [d for d in yaml.safe_load_all(text) if d is not None], f
        objs = manifest.parse_text(text, f)
        assert all(o.body["metadata"]["creationTimestamp"] for o in objs)


def test_manifest_defaults_and_keys():
    (ns, dep) = manifest.parse_text(
        "kind: Namespace\napiVersion: v1\nmetadata: {name: n}\n---\n"
        "kind: Deployment\napiVersion: apps/v1\nmetadata: {name: d}\n"
        "spec:\n  template:\n    spec:\n      containers: [{name: c, image: i}]\n", "m.yaml")
    assert ns.key == "Namespace//n" and "namespace" not in ns.body["metadata"]
    assert dep.key == "Deployment/default/d" and dep.where == "m.yaml:5"


def test_manifest_errors_name_file_line_and_object():
    text = ("apiVersion: v1\nkind: Service\nmetadata:\n  name: s\n  namespace: x\n"
            "  labels: {version: 1}\nspec:\n  ports:\n  - port: 99999\n  - port: 80\n"
            "    targetPort: [1]\n")
    with pytest.raises(LabError) as e:
        manifest.parse_text(text, "s.yaml")
    msg = str(e.value)
    assert "s.yaml:6: Service x/s: metadata.labels.version: must be a string" in msg
    # labels are checked first; fix them to see the spec errors
    with pytest.raises(LabError) as e:
        manifest.parse_text(text.replace("{version: 1}", "{version: '1'}"), "s.yaml")
    msg = str(e.value)
    assert "s.yaml:9: Service x/s: spec.ports[0].port: must be a port number" in msg
    assert "s.yaml:9: Service x/s: spec.ports[0].name: required" in msg
    assert "s.yaml:11: Service x/s: spec.ports[1].targetPort" in msg


def test_manifest_selector_must_match_template():
    text = ("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec:\n"
            "  selector: {matchLabels: {app: a}}\n  template:\n    metadata: {labels: {app: b}}\n"
            "    spec: {containers: [{name: c, image: i}]}\n")
    with pytest.raises(LabError, match=r"m.yaml:5: Deployment default/d: "
                                       r"spec.selector.matchLabels.app: selector app=a"):
        manifest.parse_text(text, "m.yaml")


def test_program_mapping_and_wait_ports():
    assert workloads.program_for("registry.k8s.io/gateway-api/conformance/echo-advanced:v0.1.0") \
        == "echo"
    assert workloads.program_for("gcr.io/k8s-staging-gateway-api/echo-basic:v1") == "echo"
    assert workloads.program_for("ghcr.io/gammamesh/waypoint:1") == "waypoint"
    assert workloads.program_for("gammamesh/ztunnel:1") is None
    assert workloads.program_for("busybox") is None
    assert workloads.echo_ports([]) == {8080, 7070}
    assert workloads.echo_ports(["--tcp=9090", "--port=8080", "--grpc=7070", "--port=8443",
                               "--tls=8443", "--crt=/cert.crt"]) == {8080, 8443, 9090, 7070}
    assert workloads.echo_ports(["--port", "80,81"]) == {80, 81, 7070}
    rec = {"spec": {"containers": [
        {"image": "x/echo-basic", "args": ["--port=1"], "ports": [{"containerPort": 5}]},
        {"image": "gammamesh/waypoint", "ports": [{"containerPort": 15008},
                                                  {"containerPort": 53, "protocol": "UDP"}]},
        {"image": "busybox", "ports": [{"containerPort": 7}]}]}}
    assert workloads.wait_ports(rec) == {1, 7070, 15008}


def test_names():
    assert topology.pod_netns("gmlab-", "ns", "p.q") == "gmlab-ns-p-q"
    long = topology.pod_netns("gmlab-", "gateway-conformance-mesh-consumer", "echo-v1-abc-xyz")
    assert len(long) <= 60 and long.startswith("gmlab-gateway-conformance-mesh-consumer-")
    assert configdir.file_name("Pod", "ns", "p") == "pod-ns-p.yaml"
    assert configdir.file_name("Namespace", "", "ns") == "namespace-ns.yaml"
    assert state.owns_netns("gmlab-", "gmlab-node1")
    assert not state.owns_netns("gmlab-", "gmlab-t1_node1")
    assert state.owns_netns("gmlab-t1_", "gmlab-t1_node1")
    assert not state.owns_netns("gmlab-t1_", "gmlab-node1")
    assert not state.owns_netns("gmlab-", "other")


def _lab(objects):
    st = {"prefix": "gmlab-", "programs": {}, "nodes": 2, "pods": {}, "vips": {},
          "objects": {}, "sources": {}, "implicit_ns": [], "ns_labels": {}}
    lab = cluster.Lab(state.Paths("/nonexistent"), st)
    lab.apply_objects(manifest.parse_text(objects, "m.yaml"))
    return lab


def test_vips_are_stable_and_explicit_ips_honoured():
    svc = ("apiVersion: v1\nkind: Service\nmetadata: {name: %s, namespace: n}\n"
           "spec: {ports: [{port: 80}]%s}\n---\n")
    lab = _lab(svc % ("a", "") + svc % ("b", ", clusterIP: 198.19.0.9"))
    lab.allocate_vips()
    first = dict(lab.st["vips"])
    assert first["n/b"] == "198.19.0.9" and first["n/a"].startswith("198.19.0.")
    lab.allocate_vips()
    assert lab.st["vips"] == first
    assert _lab(svc % ("a", "")).allocate_vips() is None
    with pytest.raises(LabError, match="already used"):
        bad = _lab(svc % ("c", ", clusterIP: 198.19.0.9") + svc % ("d", ", clusterIP: 198.19.0.9"))
        bad.allocate_vips()


def test_waypoint_gateway_becomes_a_workload_and_implicit_namespaces():
    lab = _lab("apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\n"
               "metadata: {name: wp, namespace: m}\n"
               "spec: {gatewayClassName: gammamesh-waypoint, listeners: []}\n")
    (wl,) = lab.workloads().values()
    assert (wl.ns, wl.name, wl.replicas) == ("m", "wp", 1)
    assert wl.template["metadata"]["labels"] == {
        "gateway.networking.k8s.io/gateway-name": "wp", "gammamesh.io/dataplane-mode": "none"}
    assert wl.template["spec"]["serviceAccountName"] == "wp"
    assert "Namespace//m" in lab.st["objects"] and lab.st["implicit_ns"] == ["m"]


def test_nft_rules_render_dnat_hairpin_and_reject():
    rules = [kubeproxy.PortRule("n/s:http", "198.19.0.5", 80, "TCP",
                                [("198.18.1.10", 8080), ("198.18.2.10", 8080)]),
             kubeproxy.PortRule("n/e:80", "198.19.0.6", 80, "TCP", [])]
    script = kubeproxy.render(1, rules)
    assert "ip daddr 198.19.0.5 tcp dport 80 jump svc_0" in script
    assert "numgen random mod 2 vmap { 0 : jump ep_0_0, 1 : jump ep_0_1 }" in script
    assert "meta l4proto tcp dnat to 198.18.2.10:8080" in script
    assert "snat to 198.18.1.1" in script
    assert "ip daddr 198.19.0.6 tcp dport 80 reject with tcp reset" in script


def test_reapplied_object_keeps_its_creation_timestamp():
    route = ("apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\n"
             "metadata: {name: r, namespace: n}\nspec: {}\n")
    lab = _lab(route)
    lab.st["objects"]["HTTPRoute/n/r"]["metadata"]["creationTimestamp"] = "2000-01-01T00:00:00Z"
    lab.apply_objects(manifest.parse_text(route, "m.yaml"))
    assert lab.st["objects"]["HTTPRoute/n/r"]["metadata"]["creationTimestamp"] \
        == "2000-01-01T00:00:00Z"
    explicit = route.replace("namespace: n}", "namespace: n, creationTimestamp: "
                             "'2020-01-01T00:00:00Z'}")
    lab.apply_objects(manifest.parse_text(explicit, "m.yaml"))
    assert lab.st["objects"]["HTTPRoute/n/r"]["metadata"]["creationTimestamp"] \
        == "2020-01-01T00:00:00Z"


def test_config_file_name_collisions_are_reported():
    svc = ("apiVersion: v1\nkind: Service\nmetadata: {name: %s, namespace: %s}\n"
           "spec: {ports: [{port: 80}]}\n---\n")
    lab = _lab(svc % ("c", "a-b") + svc % ("b-c", "a"))
    lab.allocate_vips()
    with pytest.raises(LabError, match="service-a-b-c.yaml"):
        lab.config_files()
    ok = _lab(svc % ("c", "a"))
    ok.allocate_vips()
    files = ok.config_files()
    assert sorted(files) == ["namespace-a.yaml", "service-a-c.yaml"]
    assert files["service-a-c.yaml"]["spec"]["clusterIP"] == ok.st["vips"]["a/c"]


def test_cni_invocation_is_kubelets():
    """The CNI gate's plugin call for a pod (gmlab/cni.py): CNI_* environment and a chained
    netconf with the pod's address as prevResult; and how a failure is read."""
    from gmlab import cni
    cfg = cni.new_config("/run/x/cni", "/b", ["node1", "node2"])
    assert cfg["sockets"] == {"node1": "/run/x/cni/node1.sock", "node2": "/run/x/cni/node2.sock"}
    rec = {"ns": "n", "name": "p", "uid": "u-1", "ip": "198.18.2.10", "cni_id": "c" * 64}
    env, stdin = cni.invocation(cfg, "ADD", rec, "node2", "/run/netns/gmlab-n-p", 7)
    assert env == {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "c" * 64,
                   "CNI_NETNS": "/run/netns/gmlab-n-p", "CNI_IFNAME": "eth0",
                   "CNI_PATH": os.path.dirname(cfg["plugin"]),
                   "CNI_ARGS": "IgnoreUnknown=1;K8S_POD_NAMESPACE=n;K8S_POD_NAME=p;"
                               "K8S_POD_INFRA_CONTAINER_ID=%s;K8S_POD_UID=u-1" % ("c" * 64)}
    conf = json.loads(stdin)
    assert conf == {"cniVersion": "1.0.0", "name": "gmlab", "type": "gammamesh-cni",
                    "socket": "/run/x/cni/node2.sock", "timeout_seconds": 7,
                    "prevResult": {"cniVersion": "1.0.0",
                                   "interfaces": [{"name": "eth0",
                                                   "sandbox": "/run/netns/gmlab-n-p"}],
                                   "ips": [{"address": "198.18.2.10/32", "interface": 0}]}}
    assert len(cni.new_container_id()) == 64 != cni.new_container_id()
    err = json.dumps({"cniVersion": "1.0.0", "code": 999, "msg": "boom", "details": "why"})
    assert cni.failure_message(1, err, "") == "boom (why)"
    assert cni.failure_message(1, "not json", "a\nlast line\n") == "last line"
    assert cni.failure_message(2, "", "") == "exit status 2, no CNI error on stdout"
