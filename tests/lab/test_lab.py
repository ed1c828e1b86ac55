"""End-to-end tests of the lab itself (tests/lab/lab). Run as root:

    sudo /usr/bin/python3 -m pytest -v tests/lab

Without root they are skipped, unless GM_E2E_REQUIRED=1, which turns the skip into a failure.
The lab under test gets its own name (GMLAB_NAME) and run dir, so it never touches a lab that
someone else runs on the same machine. These tests are about the lab, so by default they
run the stand-ins next to this file (fake_ztunnel.py, fake_waypoint.py, fake_echo.py) in
place of the daemons; GMLAB_TEST_REAL=1 runs the built ones instead (where they exist), and
GMLAB_ZTUNNEL / GMLAB_WAYPOINT / GMLAB_ECHO_SERVER set by the caller always win.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import threading
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
LAB = os.path.join(HERE, "lab")
sys.path.insert(0, HERE)

from gmlab import configdir, yamlish  # noqa: E402

if os.geteuid() != 0:
    if os.environ.get("GM_E2E_REQUIRED") == "1":
        pytest.fail("the lab tests need root and GM_E2E_REQUIRED=1 forbids skipping them",
                    pytrace=False)
    pytest.skip("the lab tests need root (network namespaces); run them with sudo",
                allow_module_level=True)

APP_NS = "lab-app"
CLIENT_NS = "lab-client"
NS_LABEL = "gmlab-test/stamped=yes"

APP = """
apiVersion: v1
kind: Namespace
metadata:
  name: lab-app
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: echo
  namespace: lab-app
spec:
  replicas: 2
  selector:
    matchLabels: {app: echo}
  template:
    metadata:
      labels: {app: echo, version: v1}
    spec:
      containers:
      - name: echo
        image: registry.k8s.io/gateway-api/conformance/echo-advanced:v0.1.0
        args: ["--port=8080", "--tcp=9090"]
        ports:
        - containerPort: 8080
        - containerPort: 9090
---
apiVersion: v1
kind: Service
metadata:
  name: echo
  namespace: lab-app
spec:
  selector: {app: echo}
  ports:
  - {name: http, port: 80, targetPort: 8080}
  - {name: tcp, port: 9090}
---
# A client in a namespace that is not in the mesh: an unknown image runs nothing.
apiVersion: v1
kind: Pod
metadata:
  name: client
  namespace: lab-client
  labels: {app: client}
spec:
  containers:
  - {name: shell, image: docker.io/library/busybox:1.36}
"""

# Python run inside a pod: GET a URL n times on fresh connections, print each Hostname.
FETCH = textwrap.dedent("""
    import sys, urllib.request
    url, n = sys.argv[1], int(sys.argv[2])
    for _ in range(n):
        body = urllib.request.urlopen(url, timeout=5).read().decode()
        print([l.split("=", 1)[1] for l in body.splitlines() if l.startswith("Hostname=")][0])
""")


def _program(env_name, built, fake):
    if os.environ.get(env_name):
        return os.environ[env_name]
    if os.environ.get("GMLAB_TEST_REAL") == "1" and os.access(built, os.X_OK):
        return built
    return os.path.join(HERE, fake)


class Lab:
    """Runs the lab CLI with this test's environment."""

    def __init__(self, workdir, name=None):
        self.workdir = workdir
        self.run_dir = os.path.join(workdir, "run")
        self.name = name or "t%d" % os.getpid()
        self.prefix = "gmlab-%s_" % self.name
        build = os.environ.get("GM_BUILD_DIR") or os.path.join(HERE, "..", "..", "build")
        self.env = dict(os.environ, GMLAB_NAME=self.name, GMLAB_RUN=self.run_dir)
        self.env["GMLAB_ZTUNNEL"] = _program("GMLAB_ZTUNNEL",
                                             os.path.join(build, "ztunnel/ztunnel"),
                                             "fake_ztunnel.py")
        self.env["GMLAB_WAYPOINT"] = _program("GMLAB_WAYPOINT",
                                              os.path.join(build, "waypoint/waypoint"),
                                              "fake_waypoint.py")
        self.env["GMLAB_ECHO_SERVER"] = _program("GMLAB_ECHO_SERVER",
                                                 os.path.join(build, "tests/echo/echo-server"),
                                                 "fake_echo.py")

    def __call__(self, *args, check=True, timeout=180):
        res = subprocess.run([LAB] + list(args), env=self.env, capture_output=True, text=True,
                             timeout=timeout)
        if check and res.returncode != 0:
            raise AssertionError("lab %s failed (%d):\n%s%s" % (" ".join(args), res.returncode,
                                                              res.stdout, res.stderr))
        return res

    def manifest(self, name, text):
        path = os.path.join(self.workdir, name)
        with open(path, "w") as f:
            f.write(textwrap.dedent(text))
        return path

    def status(self):
        return json.loads(self("status", "--json").stdout)

    def pods(self, ns=None, app=None):
        return [p for p in self.status()["pods"] if (ns is None or p["namespace"] == ns)
                and (app is None or p["labels"].get("app") == app)]

    def exec(self, target, *cmd, check=True):
        return self("exec", target, "--", *cmd, check=check)

    def config_file(self, kind, ns, name):
        return os.path.join(self.run_dir, "config", configdir.file_name(kind, ns, name))

    def config_object(self, kind, ns, name):
        with open(self.config_file(kind, ns, name)) as f:
            return yamlish.plain(yamlish.load_all(f.read())[0][1])

    def own_netns(self):
        out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        return [line.split()[0] for line in out.splitlines() if line.startswith(self.prefix)]

    def own_etc_netns(self):
        d = "/etc/netns"
        return [n for n in os.listdir(d) if n.startswith(self.prefix)] if os.path.isdir(d) else []


def _alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.fixture(scope="module")
def lab():
    workdir = tempfile.mkdtemp(prefix="gmlab-test-")
    lab = Lab(workdir)
    print("programs: ztunnel=%s waypoint=%s echo=%s" % (
        lab.env["GMLAB_ZTUNNEL"], lab.env["GMLAB_WAYPOINT"], lab.env["GMLAB_ECHO_SERVER"]))
    try:
        lab("up", "--nodes", "2", "--ns-label", NS_LABEL, "--timeout", "60",
            lab.manifest("app.yaml", APP))
        yield lab
    finally:
        res = lab("down", check=False)
        print(res.stderr)
        shutil.rmtree(workdir, ignore_errors=True)


def _ready_echo_pods(lab):
    pods = lab.pods(APP_NS, "echo")
    assert len(pods) == 2 and all(p["ready"] for p in pods), pods
    return sorted(pods, key=lambda p: p["node"])


def test_pods_get_addresses_on_both_nodes(lab):
    pods = _ready_echo_pods(lab)
    assert [p["node"] for p in pods] == ["node1", "node2"]
    for p in pods:
        k = p["node"][len("node"):]
        assert p["ip"].startswith("198.18.%s." % k), p
        assert p["netns"].startswith(lab.prefix)
        assert all(proc["alive"] for proc in p["processes"]), p
    daemons = {d["name"]: d for d in lab.status()["daemons"]}
    assert sorted(daemons) == ["ztunnel-node1", "ztunnel-node2"]
    assert all(d["alive"] for d in daemons.values())


def test_config_dir_holds_realised_objects(lab):
    pod = _ready_echo_pods(lab)[0]
    obj = lab.config_object("pod", APP_NS, pod["name"])
    meta = obj["metadata"]
    assert meta["uid"] and meta["creationTimestamp"].endswith("Z")
    assert meta["labels"]["app"] == "echo" and meta["labels"]["version"] == "v1"
    assert meta["annotations"]["gammamesh.io/netns"] == pod["netns"]
    assert obj["spec"]["nodeName"] == pod["node"]
    assert obj["spec"]["serviceAccountName"] == "default"
    assert obj["spec"]["containers"][0]["args"] == ["--port=8080", "--tcp=9090"]
    assert obj["status"]["podIP"] == pod["ip"]
    assert obj["status"]["conditions"] == [{"type": "Ready", "status": "True"}]
    svc = lab.config_object("service", APP_NS, "echo")
    assert svc["spec"]["clusterIP"].startswith("198.19.0.")
    ns = lab.config_object("namespace", "", APP_NS)
    assert ns["metadata"]["labels"]["gmlab-test/stamped"] == "yes"
    assert not any(f.startswith("deployment-") for f in os.listdir(lab.run_dir + "/config"))


def test_ztunnel_ready_endpoint_answers_in_node_netns(lab):
    code = ("import urllib.request;"
            "print(urllib.request.urlopen('http://127.0.0.1:15021/healthz/ready').status)")
    for node in lab.status()["nodes"]:
        res = subprocess.run(["ip", "netns", "exec", node["netns"], sys.executable, "-c", code],
                             capture_output=True, text=True, timeout=10)
        assert res.stdout.strip() == "200", res.stderr


def test_pod_to_pod_across_nodes(lab):
    a, b = _ready_echo_pods(lab)
    res = lab.exec("%s/%s" % (APP_NS, a["name"]), sys.executable, "-c", FETCH,
                   "http://%s:8080/" % b["ip"], "1")
    assert res.stdout.split() == [b["name"]]
    res = lab.exec("%s/%s" % (APP_NS, b["name"]), sys.executable, "-c", FETCH,
                   "http://%s:8080/" % a["ip"], "1")
    assert res.stdout.split() == [a["name"]]


def test_non_enrolled_pod_reaches_service_vip_through_dnat(lab):
    client = lab.pods(CLIENT_NS)[0]
    assert not client["enrolled"] and client["node"] == "node1"
    vip = [s for s in lab.status()["services"] if s["name"] == "echo"][0]["vip"]
    res = lab.exec("%s/app=client" % CLIENT_NS, sys.executable, "-c", FETCH,
                   "http://%s/" % vip, "30")
    seen = set(res.stdout.split())
    assert seen == {p["name"] for p in _ready_echo_pods(lab)}, res.stdout
    # TCP port 9090 (port == targetPort) as well, by name.
    code = ("import socket; s = socket.create_connection(('echo.lab-app', 9090), timeout=5);"
            "s.sendall(b'ping'); print(s.recv(4).decode())")
    assert lab.exec("%s/client" % CLIENT_NS, sys.executable, "-c", code).stdout.strip() == "ping"


def test_hairpin_through_the_vip(lab):
    pod = _ready_echo_pods(lab)[0]
    res = lab.exec("%s/%s" % (APP_NS, pod["name"]), sys.executable, "-c", FETCH,
                   "http://echo/", "30")
    assert pod["name"] in res.stdout.split()


def test_hosts_files_resolve_service_names(lab):
    vip = [s for s in lab.status()["services"] if s["name"] == "echo"][0]["vip"]
    for name in ("echo.lab-app", "echo.lab-app.svc", "echo.lab-app.svc.cluster.local"):
        res = lab.exec("%s/client" % CLIENT_NS, "getent", "hosts", name)
        assert res.stdout.split()[0] == vip, res.stdout
    assert lab.exec("%s/app=echo" % APP_NS, "getent", "hosts", "echo").stdout.split()[0] == vip
    # The short name only resolves inside the Service's own namespace.
    assert lab.exec("%s/client" % CLIENT_NS, "getent", "hosts", "echo", check=False) \
        .returncode == 2


def test_exec_exit_codes_and_environment(lab):
    assert lab.exec("%s/client" % CLIENT_NS, "sh", "-c", "exit 7", check=False).returncode == 7
    res = lab.exec("%s/app=client" % CLIENT_NS, "sh", "-c", 'echo "$HOSTNAME $PATH"')
    hostname, path = res.stdout.split()
    assert hostname == "client" and path.split(":")[0].endswith("tests/echo")
    res = lab.exec("%s/nosuchpod" % CLIENT_NS, "true", check=False)
    assert res.returncode == 125 and "no pod" in res.stderr
    res = lab.exec("%s/app=nobody" % CLIENT_NS, "true", check=False)
    assert res.returncode == 125
    assert lab.exec("%s/client" % CLIENT_NS, "no-such-command-x", check=False).returncode == 127


def test_apply_and_delete_update_config_dir(lab):
    route = lab.manifest("route.yaml", """
        apiVersion: gateway.networking.k8s.io/v1
        kind: HTTPRoute
        metadata:
          name: to-echo
          namespace: lab-app
        spec:
          parentRefs: [{group: "", kind: Service, name: echo, port: 80}]
          rules:
          - backendRefs: [{name: echo, port: 80}]
        """)
    path = lab.config_file("httproute", APP_NS, "to-echo")
    lab("apply", route)
    obj = lab.config_object("httproute", APP_NS, "to-echo")
    assert obj["spec"]["parentRefs"][0]["name"] == "echo"
    assert obj["metadata"]["creationTimestamp"]
    lab("delete", route)
    assert not os.path.exists(path)


def test_new_service_reaches_running_pods_hosts_and_rules(lab):
    svc = lab.manifest("svc2.yaml", """
        apiVersion: v1
        kind: Service
        metadata:
          name: echo-alt
          namespace: lab-app
        spec:
          selector: {app: echo}
          ports:
          - {port: 8080}
        """)
    lab("apply", svc)
    vip = [s for s in lab.status()["services"] if s["name"] == "echo-alt"][0]["vip"]
    res = lab.exec("%s/client" % CLIENT_NS, sys.executable, "-c", FETCH,
                   "http://echo-alt.lab-app:8080/", "1")
    assert res.stdout.strip().startswith("echo-")
    assert lab.exec("%s/client" % CLIENT_NS, "getent", "hosts", "echo-alt.lab-app") \
        .stdout.split()[0] == vip
    lab("delete", svc)
    assert not os.path.exists(lab.config_file("service", APP_NS, "echo-alt"))
    assert lab.exec("%s/client" % CLIENT_NS, "getent", "hosts", "echo-alt.lab-app",
                    check=False).returncode == 2


def test_deployment_scale_and_delete(lab):
    text = """
        apiVersion: apps/v1
        kind: Deployment
        metadata:
          name: extra
          namespace: lab-app
        spec:
          replicas: %d
          selector:
            matchLabels: {app: extra}
          template:
            metadata:
              labels: {app: extra}
            spec:
              containers:
              - name: echo
                image: gcr.io/k8s-staging-gateway-api/echo-basic:v20240412
                args: ["--port=8080"]
                ports: [{containerPort: 8080}]
        """
    lab("apply", lab.manifest("extra.yaml", text % 3))
    pods = lab.pods(APP_NS, "extra")
    assert len(pods) == 3 and all(p["ready"] for p in pods)
    assert {p["node"] for p in pods} == {"node1", "node2"}
    lab("apply", lab.manifest("extra.yaml", text % 1))
    kept = lab.pods(APP_NS, "extra")
    assert len(kept) == 1
    gone = [p for p in pods if p["name"] != kept[0]["name"]]
    lab("delete", lab.manifest("extra.yaml", text % 1))
    assert lab.pods(APP_NS, "extra") == []
    for p in pods:
        assert p["netns"] not in lab.own_netns()
        assert not os.path.exists(lab.config_file("pod", APP_NS, p["name"]))
        assert not any(_alive(x["pid"]) for x in p["processes"]), gone


def test_enrolled_namespace_and_waypoint_gateway(lab):
    mesh = lab.manifest("mesh.yaml", """
        apiVersion: v1
        kind: Namespace
        metadata:
          name: lab-mesh
          labels: {gammamesh.io/dataplane-mode: ambient}
        ---
        apiVersion: gateway.networking.k8s.io/v1
        kind: Gateway
        metadata:
          name: waypoint
          namespace: lab-mesh
        spec:
          gatewayClassName: gammamesh-waypoint
          listeners: [{name: mesh, port: 15008, protocol: HBONE}]
        ---
        apiVersion: v1
        kind: Pod
        metadata:
          name: app
          namespace: lab-mesh
          labels: {app: app}
        spec:
          containers:
          - name: echo
            image: registry.k8s.io/gateway-api/conformance/echo-basic:v1
            args: ["--port=8080"]
            ports: [{containerPort: 8080}]
        """)
    try:
        lab("apply", mesh)
        _check_mesh_pods(lab)
    finally:
        lab("delete", mesh)
    assert lab.pods("lab-mesh") == []


def _check_mesh_pods(lab):
    pods = {p["name"]: p for p in lab.pods("lab-mesh")}
    app = pods.pop("app")
    assert app["enrolled"] and app["ready"]
    (wp,) = pods.values()
    assert wp["name"].startswith("waypoint-") and not wp["enrolled"]
    assert wp["labels"]["gateway.networking.k8s.io/gateway-name"] == "waypoint"
    assert wp["labels"]["gammamesh.io/dataplane-mode"] == "none"
    assert wp["serviceAccount"] == "waypoint"
    for p in (app, wp):   # the lab waited for 15008: ztunnel's in app, the waypoint's own
        out = subprocess.run(["ip", "netns", "exec", p["netns"], "ss", "-ltnH"],
                             capture_output=True, text=True).stdout
        assert ":15008 " in out, (p["name"], out)
    ns = lab.config_object("namespace", "", "lab-mesh")
    assert ns["metadata"]["labels"]["gmlab-test/stamped"] == "yes"


def test_readiness_timeout_is_a_clear_error(lab):
    bad = lab.manifest("deaf.yaml", """
        apiVersion: apps/v1
        kind: Deployment
        metadata:
          name: deaf
          namespace: lab-app
        spec:
          selector:
            matchLabels: {app: deaf}
          template:
            metadata:
              labels: {app: deaf}
            spec:
              containers:
              - name: waypoint
                image: ghcr.io/gammamesh/waypoint:dev
                ports: [{containerPort: 15008}, {containerPort: 12345}]
        """)
    try:
        res = lab("apply", "--timeout", "3", bad, check=False)
    finally:
        lab("delete", bad)
    assert res.returncode == 1
    assert "timed out after 3s" in res.stderr and "port 12345" in res.stderr, res.stderr


def test_echo_without_args_is_ready_on_the_image_defaults(lab):
    # Like the conformance consumer pod: no args, more containerPorts than the server opens.
    pod = lab.manifest("consumer.yaml", """
        apiVersion: v1
        kind: Pod
        metadata:
          name: consumer
          namespace: lab-client
          labels: {app: consumer, version: v7}
        spec:
          containers:
          - name: echo
            image: registry.k8s.io/gateway-api/conformance/echo-advanced:v0.1.0
            ports: [{containerPort: 8080}, {containerPort: 8443}, {containerPort: 9090}]
        """)
    try:
        lab("apply", "--timeout", "20", pod)
        (p,) = lab.pods(CLIENT_NS, "consumer")
        assert p["ready"] and p["waitPorts"] == [7070, 8080]
        res = lab.exec("%s/client" % CLIENT_NS, sys.executable, "-c", FETCH,
                       "http://%s:8080/" % p["ip"], "1")
        assert res.stdout.split() == ["consumer"]
    finally:
        lab("delete", pod)


def test_bad_manifest_names_file_and_line(lab):
    bad = lab.manifest("bad.yaml", """
        apiVersion: apps/v1
        kind: Deployment
        metadata:
          name: broken
        spec:
          replicas: many
          template:
            spec:
              containers: []
        """)
    res = lab("apply", bad, check=False)
    assert res.returncode == 1
    assert "bad.yaml:7: Deployment default/broken: spec.replicas" in res.stderr, res.stderr
    assert "spec.template.spec.containers" in res.stderr


def test_recreate_sandbox_keeps_the_pod_and_replaces_its_netns(lab):
    """`lab recreate-sandbox`: the pod object (uid, IP) and its config file stay as they are; its
    netns is a new one under the same name, its programs new processes, its veth new and single;
    it is reachable again when the command returns."""
    a, b = _ready_echo_pods(lab)
    path = lab.config_file("Pod", APP_NS, b["name"])
    with open(path) as f:
        before_text = f.read()
    ns_path = os.path.join("/run/netns", b["netns"])
    before_ino = os.stat(ns_path).st_ino
    before_pids = [p["pid"] for p in b["processes"]]
    node_ns = lab.prefix + b["node"]

    def veths():
        out = subprocess.run(["ip", "-n", node_ns, "-o", "link", "show", "type", "veth"],
                             capture_output=True, text=True, check=True).stdout
        return sorted(l.split(":")[1].strip().split("@")[0] for l in out.splitlines())
    before_veths = veths()
    lab("recreate-sandbox", "--timeout", "60", "%s/%s" % (APP_NS, b["name"]))
    after = [p for p in lab.pods(APP_NS, "echo") if p["name"] == b["name"]][0]
    assert after["ip"] == b["ip"] and after["ready"], after
    with open(path) as f:
        assert f.read() == before_text
    assert os.stat(ns_path).st_ino != before_ino
    pids = [p["pid"] for p in after["processes"]]
    assert pids and not set(pids) & set(before_pids), (before_pids, pids)
    assert all(not _alive(pid) for pid in before_pids)
    assert veths() == before_veths
    res = lab.exec("%s/%s" % (APP_NS, a["name"]), sys.executable, "-c", FETCH,
                   "http://%s:8080/" % b["ip"], "1")
    assert res.stdout.split() == [b["name"]]
    bad = lab("recreate-sandbox", "%s/no-such-pod" % APP_NS, check=False)
    assert bad.returncode == 1 and "no pod" in bad.stderr, bad


def test_cni_gate_is_off_by_default(lab):
    assert lab.status()["cni"] == {"enabled": False}
    for d in lab.status()["daemons"]:
        assert "--cni-socket" not in d["argv"], d
    assert not os.path.exists(os.path.join(lab.run_dir, "cni"))
    assert all("cni" not in p for p in lab.status()["pods"])


def test_down_removes_everything(lab):
    status = lab.status()
    pids = [d["pid"] for d in status["daemons"]]
    pids += [x["pid"] for p in status["pods"] for x in p["processes"]]
    assert pids and lab.own_netns() and lab.own_etc_netns()
    lab("down")
    assert lab.own_netns() == []
    assert lab.own_etc_netns() == []
    assert [p for p in pids if _alive(p)] == []
    assert not os.path.exists(lab.run_dir)
    assert lab("down").returncode == 0      # safe to run twice
    res = lab("exec", "%s/client" % CLIENT_NS, "--", "true", check=False)
    assert res.returncode == 125 and "no lab is up" in res.stderr


# ---------------------------------------------------------------------------------------------
# The CNI gate (GMLAB_CNI=1): a second lab, with the stand-in plugin fake_cni.py (these tests are
# about how the lab calls a plugin; tests/e2e/test_cni.py runs the real one), which records every
# call and fails ADD while a file exists.

CNI_APP = """
apiVersion: v1
kind: Namespace
metadata:
  name: cni-mesh
  labels: {gammamesh.io/dataplane-mode: ambient}
---
apiVersion: v1
kind: Pod
metadata:
  name: app
  namespace: cni-mesh
  labels: {app: app}
spec:
  containers:
  - name: echo
    image: registry.k8s.io/gateway-api/conformance/echo-basic:v1
    args: ["--port=8080"]
---
apiVersion: v1
kind: Pod
metadata:
  name: plain
  namespace: cni-plain
  labels: {app: plain}
spec:
  containers:
  - name: echo
    image: registry.k8s.io/gateway-api/conformance/echo-basic:v1
    args: ["--port=8080"]
"""

CNI_NEW_POD = """
apiVersion: v1
kind: Pod
metadata:
  name: late
  namespace: cni-mesh
  labels: {app: late}
spec:
  containers:
  - name: echo
    image: registry.k8s.io/gateway-api/conformance/echo-basic:v1
    args: ["--port=8080"]
"""


@pytest.fixture(scope="module")
def cni_lab():
    workdir = tempfile.mkdtemp(prefix="gmlab-cni-test-")
    lab = Lab(workdir, name="c%d" % os.getpid())
    lab.record = os.path.join(workdir, "cni-calls.jsonl")
    lab.fail_file = os.path.join(workdir, "cni-fail")
    lab.env.update(GMLAB_CNI="1", GMLAB_CNI_PLUGIN=os.path.join(HERE, "fake_cni.py"),
                   GMLAB_FAKE_CNI_RECORD=lab.record, GMLAB_FAKE_CNI_FAIL_FILE=lab.fail_file)
    try:
        lab("up", "--nodes", "2", "--timeout", "60", lab.manifest("cni-app.yaml", CNI_APP))
        yield lab
    finally:
        res = lab("down", check=False)
        print(res.stderr)
        shutil.rmtree(workdir, ignore_errors=True)


def _cni_calls(lab, pod=None, command=None):
    """The plugin calls fake_cni.py recorded, oldest first (optionally one pod's, one kind)."""
    with open(lab.record) as f:
        calls = [json.loads(line) for line in f if line.strip()]
    for c in calls:
        c["args"] = dict(kv.split("=", 1) for kv in c["env"]["CNI_ARGS"].split(";"))
    return [c for c in calls if (pod is None or c["args"]["K8S_POD_NAME"] == pod)
            and (command is None or c["env"]["CNI_COMMAND"] == command)]


def _cni_pod(lab, ns, name):
    (p,) = [p for p in lab.pods(ns) if p["name"] == name]
    return p


def test_cni_add_runs_like_kubelet_before_the_programs(cni_lab):
    """Each pod, enrolled or not, got one ADD with kubelet's environment and a chained netconf
    (its node's socket, the pod's address as prevResult), after its object was in the config
    dir and before any of its programs ran; the enrolled pod's ztunnel had captured it when the
    plugin answered, the other one was not_enrolled."""
    st = cni_lab.status()
    gate = st["cni"]
    assert gate["enabled"] and gate["plugin"].endswith("fake_cni.py"), gate
    for d in st["daemons"]:
        node = d["name"][len("ztunnel-"):]
        i = d["argv"].index("--cni-socket")
        assert d["argv"][i + 1] == gate["sockets"][node] == \
            os.path.join(cni_lab.run_dir, "cni", node + ".sock"), d["argv"]
    for ns, name, reply in (("cni-mesh", "app", "captured"), ("cni-plain", "plain",
                                                             "not_enrolled")):
        pod = _cni_pod(cni_lab, ns, name)
        assert pod["ready"] and pod["processes"], pod
        (add,) = _cni_calls(cni_lab, name, "ADD")
        env, conf = add["env"], add["conf"]
        netns_file = os.path.join("/run/netns", pod["netns"])
        assert env["CNI_NETNS"] == netns_file
        assert len(env["CNI_CONTAINERID"]) == 64 and env["CNI_IFNAME"] == "eth0"
        assert env["CNI_CONTAINERID"] == pod["cni"]["containerID"] and pod["cni"]["added"]
        assert env["CNI_PATH"] == os.path.dirname(gate["plugin"])
        uid = cni_lab.config_object("pod", ns, name)["metadata"]["uid"]
        assert add["args"] == {"IgnoreUnknown": "1", "K8S_POD_NAMESPACE": ns,
                               "K8S_POD_NAME": name, "K8S_POD_UID": uid,
                               "K8S_POD_INFRA_CONTAINER_ID": env["CNI_CONTAINERID"]}
        assert conf["type"] == "gammamesh-cni" and conf["cniVersion"] == "1.0.0"
        assert conf["socket"] == gate["sockets"][pod["node"]]
        assert 1 <= conf["timeout_seconds"] <= 30
        assert conf["prevResult"]["ips"] == [{"address": pod["ip"] + "/32", "interface": 0}]
        assert conf["prevResult"]["interfaces"] == [{"name": "eth0", "sandbox": netns_file}]
        # published first: ztunnel waits for the pod in its snapshot
        assert "gammamesh.io/netns: %s" % pod["netns"] in add["config_object"]
        assert add["pids_in_netns"] == [] and add["pids_in_netns_at_exit"] == [], add
        assert add["reply"] == {"result": reply, "message": ""}, add
    log = open(os.path.join(cni_lab.run_dir, "logs", "cni.log")).read()
    assert "ADD cni-mesh/app container=" in log and "exit 0" in log, log


def test_cni_failing_add_holds_the_pod_and_is_retried(cni_lab):
    """ADD fails: the pod stays not Ready with no process, the command times out with the
    plugin's msg, which the pod's log and cni.log show; ADD is retried every second (same
    sandbox) and the pod starts once it succeeds."""
    with open(cni_lab.fail_file, "w") as f:
        f.write("ztunnel says boom-4711\n")
    path = cni_lab.manifest("cni-late.yaml", CNI_NEW_POD)
    try:
        t0 = time.monotonic()
        res = cni_lab("apply", "--timeout", "3", path, check=False)
        assert res.returncode == 1, res
        assert "timed out after 3s" in res.stderr and "boom-4711" in res.stderr, res.stderr
        assert "pod cni-mesh/late: programs not started: CNI ADD failed: ztunnel says " \
            "boom-4711" in res.stderr, res.stderr
        late = _cni_pod(cni_lab, "cni-mesh", "late")
        assert not late["ready"] and late["processes"] == [], late
        assert late["cni"]["error"] == "ztunnel says boom-4711" and not late["cni"]["added"]
        assert cni_lab.config_object("pod", "cni-mesh", "late")["status"]["conditions"] == \
            [{"type": "Ready", "status": "False"}]
        res = cni_lab("logs", "cni-mesh/late")
        assert "CNI ADD failed (programs not started): ztunnel says boom-4711" in res.stdout
        assert "boom-4711" in cni_lab("logs", "cni").stdout
        adds = _cni_calls(cni_lab, "late", "ADD")
        assert 2 <= len(adds) <= 5, [a["time"] for a in adds]     # at once, then every 1 s
        gaps = [b["time"] - a["time"] for a, b in zip(adds, adds[1:])]
        assert all(0.9 <= g <= 2.0 for g in gaps), gaps
        assert time.monotonic() - t0 < 10
        # the plugin starts to succeed while a command waits: the pod starts
        threading.Timer(1.5, os.unlink, [cni_lab.fail_file]).start()
        cni_lab("apply", "--timeout", "20", path)
        late = _cni_pod(cni_lab, "cni-mesh", "late")
        assert late["ready"] and late["processes"] and late["cni"]["added"], late
        adds = _cni_calls(cni_lab, "late", "ADD")
        assert {a["env"]["CNI_CONTAINERID"] for a in adds} == {late["cni"]["containerID"]}
        assert adds[-1]["reply"]["result"] == "captured" and "failed" not in adds[-1]
        assert all("failed" in a for a in adds[:-1])
        assert all(a["pids_in_netns_at_exit"] == [] for a in adds)
    finally:
        if os.path.exists(cni_lab.fail_file):
            os.unlink(cni_lab.fail_file)
        cni_lab("delete", path)
    (dele,) = _cni_calls(cni_lab, "late", "DEL")
    assert dele["env"]["CNI_CONTAINERID"] == late["cni"]["containerID"]
    assert dele["env"]["CNI_NETNS"] == os.path.join("/run/netns", late["netns"])
    assert dele["pids_in_netns"] == []      # programs stopped first, the netns still there


def test_cni_recreate_sandbox_is_del_then_add_with_a_new_id(cni_lab):
    before = _cni_pod(cni_lab, "cni-mesh", "app")
    n = len(_cni_calls(cni_lab, "app"))
    cni_lab("recreate-sandbox", "--timeout", "30", "cni-mesh/app")
    after = _cni_pod(cni_lab, "cni-mesh", "app")
    assert after["ready"] and after["processes"], after
    dele, add = _cni_calls(cni_lab, "app")[n:]
    assert dele["env"]["CNI_COMMAND"] == "DEL" and add["env"]["CNI_COMMAND"] == "ADD"
    assert dele["env"]["CNI_CONTAINERID"] == before["cni"]["containerID"]
    assert add["env"]["CNI_CONTAINERID"] == after["cni"]["containerID"] != \
        before["cni"]["containerID"]
    assert add["env"]["CNI_NETNS"] == dele["env"]["CNI_NETNS"]
    assert add["pids_in_netns"] == [] and add["pids_in_netns_at_exit"] == []
    assert add["reply"]["result"] == "captured"
    # a re-created sandbox whose ADD fails: not Ready, no programs, the msg
    with open(cni_lab.fail_file, "w") as f:
        f.write("held-again\n")
    try:
        res = cni_lab("recreate-sandbox", "--timeout", "2", "cni-mesh/app", check=False)
        assert res.returncode == 1 and "CNI ADD failed: held-again" in res.stderr, res.stderr
        held = _cni_pod(cni_lab, "cni-mesh", "app")
        assert not held["ready"] and held["processes"] == [], held
    finally:
        os.unlink(cni_lab.fail_file)
    cni_lab("apply", "--timeout", "20", cni_lab.manifest("cni-app.yaml", CNI_APP))
    back = _cni_pod(cni_lab, "cni-mesh", "app")
    assert back["ready"] and back["processes"], back


def test_cni_down_sends_del_for_every_sandbox(cni_lab):
    pods = {p["name"]: p["cni"]["containerID"] for p in cni_lab.status()["pods"]}
    n = len(_cni_calls(cni_lab))
    cni_lab("down")
    dels = {c["args"]["K8S_POD_NAME"]: c["env"]["CNI_CONTAINERID"]
            for c in _cni_calls(cni_lab)[n:] if c["env"]["CNI_COMMAND"] == "DEL"}
    assert dels == pods
    assert not os.path.exists(cni_lab.run_dir) and cni_lab.own_netns() == []
