"""The CNI gate: the chained plugin gammamesh-cni and `ztunnel --cni-socket`.

- With a lab (`GMLAB_CNI=1 lab up`, which runs the plugin for every sandbox as kubelet does and
  starts a pod's programs only once ADD succeeded): every enrolled pod was captured, in the very
  netns it has, before its programs started, and a pod outside the mesh was let through; a
  re-created sandbox is captured the moment `lab recreate-sandbox` returns, and its first
  connection goes through the tunnel.
- Without a lab (the plugin alone, against small Unix-socket servers of this module): VERSION,
  fail-open when ztunnel is not there, CNI errors (bad input, no answer in time, ztunnel's
  error), the request it sends, and the install/uninstall subcommands on a sample conflist.
"""

import datetime
import json
import os
import re
import shutil
import socket
import stat
import tempfile
import threading
import time

import pytest

from conftest import (BUILD, DEMO, capture_of, echo_once, make_lab, metric_sum, need, run,
                      wait_for)

PLUGIN = BUILD / "ztunnel" / "gammamesh-cni"
VERSIONS = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]

PLAIN = """
apiVersion: v1
kind: Pod
metadata:
  name: plain
  namespace: cni-plain
  labels: {app: plain}
spec:
  containers:
  - name: echo
    image: registry.k8s.io/gateway-api/conformance/echo-advanced:v0.1.0
    args: ["--port=8080", "--tcp=9090"]
"""


def need_plugin():
    need(os.access(PLUGIN, os.X_OK), "%s is not built (ninja -C %s)" % (PLUGIN, BUILD))


# ---------------------------------------------------------------------------------------------
# with a lab


@pytest.fixture(scope="module")
def lab(request, tmp_path_factory):
    need_plugin()
    lab = make_lab(request, tmp_path_factory, "cni")
    lab.env.pop("GMLAB_CNI_PLUGIN", None)          # the built plugin, nothing else
    lab.up(DEMO, lab.manifest(PLAIN), extra_env={"GMLAB_CNI": "1"})
    return lab


def netns_inode(pod):
    return os.stat(os.path.join("/run/netns", pod["netns"])).st_ino


def dump_pods(lab, node):
    status, body = lab.http_get(node, 15000, "/config_dump")
    assert status == 200, status
    return {p["pod"]: p for p in json.loads(body)["pods"]}


def started_at(pid):
    """Wall-clock start of a process (10 ms resolution, from /proc/PID/stat)."""
    with open("/proc/%d/stat" % pid) as f:
        ticks = int(f.read().rsplit(")", 1)[1].split()[19])
    boot = time.time() - time.clock_gettime(time.CLOCK_BOOTTIME)
    return boot + ticks / os.sysconf("SC_CLK_TCK")


def log_time(line):
    m = re.search(r"\bts=(\S+)Z\b", line)
    assert m, "no ts= in %r" % line
    return datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%f").replace(
        tzinfo=datetime.timezone.utc).timestamp()


def cni_answers(lab, pod, result):
    """ztunnel's log lines (component cni) that answered a request for pod with result."""
    who = re.compile(r"\bpod=%s/%s(\s|$)" % (re.escape(pod["namespace"]), re.escape(pod["name"])))
    return [l for l in lab.log("ztunnel-" + pod["node"]).splitlines()
            if re.search(r"\bsub=cni\b|\bcomponent=cni\b", l) and who.search(l)
            and re.search(r"\bresult=%s\b" % result, l)]


def answer_for_sandbox(lab, pod, result):
    """The ADD answer for pod's current sandbox (its CNI_CONTAINERID, when the line names it)."""
    lines = [l for l in cni_answers(lab, pod, result) if "command=DEL" not in l]
    cid = pod["cni"]["containerID"]
    named = [l for l in lines if "container=" in l]
    if named:
        lines = [l for l in named if "container=%s" % cid in l]
    assert lines, "ztunnel-%s logged no CNI answer result=%s for %s/%s (container %s)" % (
        pod["node"], result, pod["namespace"], pod["name"], cid)
    return lines[-1]


def assert_captured_before_start(lab, pod):
    """The ADD that let pod's sandbox start was answered `captured` in the netns the pod has
    now, before any of its programs started."""
    line = answer_for_sandbox(lab, pod, "captured")
    answered = log_time(line)
    assert pod["processes"], pod
    for proc in pod["processes"]:
        # 10 ms: the process start time's resolution (the answer has 1 ms)
        assert answered <= started_at(proc["pid"]) + 0.01, (
            "%s/%s: program %d started at %.3f, before ztunnel answered captured at %.3f: %s"
            % (pod["namespace"], pod["name"], proc["pid"], started_at(proc["pid"]), answered,
               line))
    entry = dump_pods(lab, pod["node"]).get(pod["name"], {})
    assert entry.get("state") == "captured" and entry.get("netns_inode") == netns_inode(pod), \
        (entry, netns_inode(pod))


def test_enrolled_pods_were_captured_before_their_programs_started(lab):
    st = lab.status(fresh=True)
    assert st["cni"]["enabled"] and st["cni"]["plugin"] == str(PLUGIN), st["cni"]
    for d in st["daemons"]:
        assert "--cni-socket" in d["argv"], d["argv"]
    enrolled = [p for p in st["pods"] if p["enrolled"]]
    assert len(enrolled) == 4, [p["name"] for p in st["pods"]]
    for pod in enrolled:
        assert pod["ready"] and pod["cni"]["added"], pod
        assert_captured_before_start(lab, pod)
        cap = capture_of(lab, pod)
        assert cap["table"] and cap["listed"] and cap["listeners"] == [15001, 15006, 15008], cap
    (plain,) = [p for p in st["pods"] if p["namespace"] == "cni-plain"]
    assert not plain["enrolled"] and plain["ready"] and plain["cni"]["added"], plain
    answer_for_sandbox(lab, plain, "not_enrolled")
    assert not cni_answers(lab, plain, "captured")
    assert "table ip gammamesh" not in lab.nft_tables(plain["netns"])
    assert plain["name"] not in dump_pods(lab, plain["node"])
    log = lab.log("cni")
    for pod in enrolled + [plain]:
        assert "ADD %s/%s container=%s" % (pod["namespace"], pod["name"],
                                            pod["cni"]["containerID"][:12]) in log, log


def test_recreated_sandbox_is_captured_when_the_command_returns(lab, client, remote_b):
    """No sleep and no retry after `lab recreate-sandbox`: the capture table is in the new
    netns, ztunnel lists the new netns, and the first connection from the pod is tunnelled."""
    node, name = remote_b["node"], remote_b["name"]
    before = netns_inode(remote_b)
    old_cid = remote_b["cni"]["containerID"]
    lab.lab("recreate-sandbox", "--timeout", 40, "demo/" + name, timeout=150)
    assert "table ip gammamesh" in lab.nft_tables(remote_b["netns"])
    assert netns_inode(remote_b) != before
    entry = dump_pods(lab, node)[name]
    assert entry["state"] == "captured" and entry["netns_inode"] == netns_inode(remote_b), entry

    def opened():
        return metric_sum(lab.metrics(node), "istio_tcp_connections_opened_total",
                          reporter="source", source_workload=name)
    n = opened()
    res = echo_once(lab, remote_b["netns"], client["ip"], 9090, "first-from-the-new-sandbox")
    assert res["ok"], res
    wait_for(lambda: opened() > n, 10,
             what="ztunnel-%s to count the first connection of %s (reporter=source)"
             % (node, name))

    (after,) = [p for p in lab.pods("demo") if p["name"] == name]
    assert after["cni"]["containerID"] != old_cid and after["ready"], after
    assert_captured_before_start(lab, after)


NEWBIE = """
apiVersion: v1
kind: Pod
metadata:
  name: newbie
  namespace: demo
  labels: {app: newbie}
spec:
  containers:
  - name: echo
    image: registry.k8s.io/gateway-api/conformance/echo-advanced:v0.1.0
    args: ["--port=8080", "--tcp=9090"]
"""


def test_a_new_pod_is_held_until_captured_and_del_follows_its_deletion(lab, client):
    """`lab apply` of a new enrolled pod: ztunnel has not seen it when the sandbox is made, so
    ADD waits for the snapshot and the capture; the pod's programs start after that. Deleting
    the pod sends DEL for its sandbox."""
    lab.apply(NEWBIE)
    try:
        (pod,) = lab.pods("demo", app="newbie")
        assert pod["ready"] and pod["cni"]["added"], pod
        assert_captured_before_start(lab, pod)
        assert "table ip gammamesh" in lab.nft_tables(pod["netns"])
        far = pod["node"] != client["node"]
        res = echo_once(lab, pod["netns"], client["ip"], 9090, "newbie-first")
        assert res["ok"], (res, "across nodes" if far else "same node")
    finally:
        lab.delete(NEWBIE)
    dels = [l for l in cni_answers(lab, pod, "ok") if "DEL" in l
            and ("container=" not in l or "container=%s" % pod["cni"]["containerID"] in l)]
    assert dels, "ztunnel-%s logged no DEL answer for newbie" % pod["node"]
    wait_for(lambda: "newbie" not in dump_pods(lab, pod["node"]), 10,
             what="ztunnel-%s to forget newbie" % pod["node"])


def test_an_unknown_pod_passes_only_outside_the_mesh(lab, client):
    """A sandbox of a pod ztunnel has no object for (an API out of reach, a typo): in a namespace
    known not to be enrolled it starts after a short wait; in an enrolled namespace it is
    refused with the reason once timeout_seconds run out."""
    sock = lab.status(fresh=True)["cni"]["sockets"][client["node"]]
    env = {"CNI_NETNS": "/run/netns/" + client["netns"], "CNI_CONTAINERID": "unknown-1"}
    res = plugin("ADD", netconf(sock, timeout=10), CNI_ARGS="K8S_POD_NAMESPACE=cni-plain;"
                 "K8S_POD_NAME=ghost", **env)
    assert res.returncode == 0, (res.stdout, res.stderr)
    assert 1.5 <= res.elapsed <= 8, "a plain namespace's unknown pod waited %.2fs" % res.elapsed
    res = plugin("ADD", netconf(sock, timeout=2), CNI_ARGS="K8S_POD_NAMESPACE=demo;"
                 "K8S_POD_NAME=ghost", **env)
    err = cni_error(res, code=999)
    assert "not in ztunnel's configuration" in err["msg"], err
    assert 1.5 <= res.elapsed <= 6, res.elapsed
    # the client's own capture is untouched by either
    assert_captured_before_start(lab, client)
    assert "table ip gammamesh" in lab.nft_tables(client["netns"])


def test_hostile_requests_get_an_error_and_the_gate_keeps_answering(lab, client):
    """Garbage, a request too long, bad fields, a client that vanishes mid-request: each is
    refused or dropped, ztunnel stays up, and a proper CHECK is still answered."""
    sock = lab.status(fresh=True)["cni"]["sockets"][client["node"]]

    def ask(data, shut=False):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(10)
        s.connect(sock)
        try:
            s.sendall(data)
            if shut:
                return None
            buf = b""
            while not buf.endswith(b"\n"):
                b = s.recv(4096)
                if not b:
                    break
                buf += b
            return json.loads(buf)
        finally:
            s.close()

    for data, why in ((b"garbage\n", "not a JSON object"),
                      (b"[1,2]\n", "not a JSON object"),
                      (b'{"command":"ADD","netns":"/run/netns/../etc","namespace":"demo",'
                       b'"pod":"x"}\n', "netns"),
                      (b'{"command":"ADD","netns":"/run/netns/x","namespace":"Demo!",'
                       b'"pod":"x"}\n', "Kubernetes names"),
                      (b"{" + b" " * 70000, "longer than")):
        reply = ask(data)
        assert reply["result"] == "error" and why in reply["message"], (data[:60], reply)
    ask(b'{"command":"ADD","netns":"/run/netns/x",', shut=True)   # vanishes mid-request
    reply = ask((json.dumps({"command": "CHECK", "netns": "/run/netns/" + client["netns"],
                             "namespace": "demo", "pod": client["name"]}) + "\n").encode())
    assert reply["result"] == "captured", reply
    m = metric_sum(lab.metrics(client["node"]), "gammamesh_ztunnel_cni_requests_total",
                   command="CHECK", result="captured")
    assert m >= 1, m


# ---------------------------------------------------------------------------------------------
# the plugin alone


class FakeZtunnel:
    """A Unix-socket server standing in for ztunnel: records each request line and answers
    `reply` (bytes; None = never answer, holding the connection)."""

    def __init__(self, path, reply):
        self.path, self.reply = path, reply
        self.requests = []
        self.conns = []
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        os.chmod(path, 0o600)
        self.sock.listen(8)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)
            data = b""
            conn.settimeout(10)
            try:
                while not data.endswith(b"\n"):
                    b = conn.recv(65536)
                    if not b:
                        break
                    data += b
            except OSError:
                pass
            self.requests.append(data)
            if self.reply is not None:
                try:
                    conn.sendall(self.reply)
                    conn.close()
                except OSError:
                    pass

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)     # wakes the accept() of the thread
        except OSError:
            pass
        self.sock.close()
        for c in self.conns:
            c.close()
        self.thread.join(5)


@pytest.fixture
def sockdir():
    d = tempfile.mkdtemp(prefix="gm-cni-")       # short: sun_path holds 107 bytes
    servers = []
    yield d, servers
    for s in servers:
        s.close()
    shutil.rmtree(d, ignore_errors=True)


def serve(sockdir, reply):
    d, servers = sockdir
    s = FakeZtunnel(os.path.join(d, "ztunnel-%d.sock" % len(servers)), reply)
    servers.append(s)
    return s


PREV = {"cniVersion": "1.0.0",
        "interfaces": [{"name": "eth0", "sandbox": "/var/run/netns/cni-1234"}],
        "ips": [{"address": "10.244.1.5/24", "interface": 0}]}


def netconf(socket_path, timeout=30, prev=PREV, version="1.0.0"):
    conf = {"cniVersion": version, "name": "k8s-pod-network", "type": "gammamesh-cni",
            "socket": socket_path, "timeout_seconds": timeout}
    if prev is not None:
        conf["prevResult"] = prev
    return json.dumps(conf)


def plugin(command, stdin, pod=True, timeout=30, **env_over):
    need_plugin()
    env = {"PATH": "/usr/bin:/bin", "CNI_COMMAND": command, "CNI_CONTAINERID": "c0ffee" * 10,
           "CNI_NETNS": "/var/run/netns/cni-1234", "CNI_IFNAME": "eth0", "CNI_PATH": "/opt/cni/bin",
           "CNI_ARGS": "IgnoreUnknown=1;K8S_POD_NAMESPACE=shop;K8S_POD_NAME=cart-7d9f;"
                       "K8S_POD_INFRA_CONTAINER_ID=%s;K8S_POD_UID=uid-42" % ("c0ffee" * 10)
                       if pod else "IgnoreUnknown=1"}
    env.update(env_over)
    env = {k: v for k, v in env.items() if v is not None}
    t0 = time.monotonic()
    res = run([str(PLUGIN)], input=stdin, env=env, timeout=timeout)
    res.elapsed = time.monotonic() - t0
    return res


def cni_error(res, code=None):
    """The CNI error a failed call printed on stdout."""
    assert res.returncode == 1, (res.returncode, res.stdout, res.stderr)
    err = json.loads(res.stdout)
    assert isinstance(err.get("msg"), str) and err["msg"], err
    assert "cniVersion" in err and isinstance(err.get("code"), int), err
    if code is not None:
        assert err["code"] == code, err
    return err


def test_version():
    res = plugin("VERSION", "")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout) == {"cniVersion": "1.1.0", "supportedVersions": VERSIONS}


def test_del_status_gc_without_ztunnel_exit_0(sockdir):
    missing = os.path.join(sockdir[0], "none.sock")
    for cmd in ("DEL", "STATUS", "GC"):
        res = plugin(cmd, netconf(missing))
        assert res.returncode == 0 and res.stdout.strip() == "", (cmd, res.stdout, res.stderr)


def test_add_fails_open_without_ztunnel(sockdir):
    """No socket, or a socket nobody listens on: the pod starts (prevResult, a warning)."""
    missing = os.path.join(sockdir[0], "none.sock")
    res = plugin("ADD", netconf(missing))
    assert res.returncode == 0, (res.stdout, res.stderr)
    assert json.loads(res.stdout) == PREV
    assert "warn" in res.stderr.lower(), res.stderr
    dead = os.path.join(sockdir[0], "dead.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(dead)                     # bound, never listening: connect() is refused
    try:
        res = plugin("ADD", netconf(dead, prev=None))
    finally:
        s.close()
    assert res.returncode == 0, (res.stdout, res.stderr)
    assert json.loads(res.stdout) == {"cniVersion": "1.0.0"}
    assert "warn" in res.stderr.lower(), res.stderr


def test_bad_input_is_a_cni_error(sockdir):
    srv = serve(sockdir, b'{"result":"captured","message":""}\n')
    cni_error(plugin("ADD", "{not json"), code=6)
    cni_error(plugin("ADD", netconf(srv.path), CNI_COMMAND=None), code=4)
    for bad in (0, 601, "30", 1.5):  # invalid network config, not silently 30 s
        cni_error(plugin("ADD", netconf(srv.path, timeout=bad)), code=7)
    assert srv.requests == []


def test_not_a_pod_passes_without_asking(sockdir):
    srv = serve(sockdir, b'{"result":"error","message":"must not be asked"}\n')
    res = plugin("ADD", netconf(srv.path), pod=False)
    assert res.returncode == 0, (res.stdout, res.stderr)
    assert json.loads(res.stdout) == PREV and srv.requests == []


def test_add_times_out_against_a_silent_ztunnel(sockdir):
    srv = serve(sockdir, None)
    res = plugin("ADD", netconf(srv.path, timeout=1), timeout=20)
    cni_error(res, code=999)
    assert 0.9 <= res.elapsed <= 4, "timeout_seconds=1 but the plugin took %.2fs" % res.elapsed
    assert len(srv.requests) == 1, srv.requests


def test_ztunnel_error_and_malformed_answers_fail_closed(sockdir):
    err = cni_error(plugin("ADD", netconf(serve(sockdir, b'{"result":"error","message":"boom"}\n')
                                          .path)), code=999)
    assert "boom" in err["msg"] + err.get("details", ""), err
    for bad in (b"not json\n", b'{"result":"perhaps"}\n', b"\n"):
        cni_error(plugin("ADD", netconf(serve(sockdir, bad).path), timeout=60))


def test_captured_and_not_enrolled_echo_prev_result_and_the_request_is_the_contract(sockdir):
    for result in ("captured", "not_enrolled"):
        srv = serve(sockdir, json.dumps({"result": result, "message": ""}).encode() + b"\n")
        res = plugin("ADD", netconf(srv.path))
        assert res.returncode == 0, (res.stdout, res.stderr)
        assert json.loads(res.stdout) == PREV
        (line,) = srv.requests
        assert line.endswith(b"\n") and line.count(b"\n") == 1, line
        req = json.loads(line)
        assert {k: req.get(k) for k in ("command", "container_id", "netns", "namespace", "pod",
                                         "uid", "ips")} == {
            "command": "ADD", "container_id": "c0ffee" * 10,
            "netns": "/var/run/netns/cni-1234", "namespace": "shop", "pod": "cart-7d9f",
            "uid": "uid-42", "ips": ["10.244.1.5"]}, req
    # no prevResult: {"cniVersion": v}
    srv = serve(sockdir, b'{"result":"captured","message":""}\n')
    res = plugin("ADD", netconf(srv.path, prev=None, version="0.4.0"))
    assert res.returncode == 0 and json.loads(res.stdout) == {"cniVersion": "0.4.0"}, res
    assert json.loads(srv.requests[0])["ips"] == []


def test_del_and_check_ask_ztunnel(sockdir):
    srv = serve(sockdir, b'{"result":"ok","message":""}\n')
    res = plugin("DEL", netconf(srv.path))
    assert res.returncode == 0 and res.stdout.strip() == "", res
    req = json.loads(srv.requests[0])
    assert req["command"] == "DEL" and req["container_id"] == "c0ffee" * 10, req
    # DEL stays 0 whatever ztunnel says
    res = plugin("DEL", netconf(serve(sockdir, b'{"result":"error","message":"x"}\n').path))
    assert res.returncode == 0, res
    srv = serve(sockdir, b'{"result":"captured","message":""}\n')
    assert plugin("CHECK", netconf(srv.path)).returncode == 0
    assert json.loads(srv.requests[0])["command"] == "CHECK"
    err = cni_error(plugin("CHECK", netconf(
        serve(sockdir, b'{"result":"error","message":"not captured: kaput"}\n').path)))
    assert "kaput" in err["msg"] + err.get("details", ""), err


# ---------------------------------------------------------------------------------------------
# install / uninstall


CONFLIST = {
    "cniVersion": "1.0.0", "name": "k8s-pod-network",
    "plugins": [
        {"type": "bridge", "bridge": "cni0", "isGateway": True, "ipMasq": True,
         "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.244.1.0/24"}]]}},
        {"type": "portmap", "capabilities": {"portMappings": True}, "snat": True},
    ],
}


@pytest.fixture
def cni_dirs(tmp_path):
    need_plugin()
    bin_dir, conf_dir = tmp_path / "bin", tmp_path / "net.d"
    bin_dir.mkdir()
    conf_dir.mkdir()
    return bin_dir, conf_dir


def install(*args):
    return run([str(PLUGIN)] + [str(a) for a in args], timeout=30)


def test_install_adds_one_entry_last_and_uninstall_restores(cni_dirs):
    bin_dir, conf_dir = cni_dirs
    first, second = conf_dir / "10-k8s.conflist", conf_dir / "20-other.conflist"
    first.write_text(json.dumps(CONFLIST, indent=2))
    second.write_text(json.dumps(dict(CONFLIST, name="other")))
    (conf_dir / "30-single.conf").write_text(json.dumps(CONFLIST["plugins"][0]))
    second_before = second.read_text()

    res = install("install", "--bin-dir", bin_dir, "--conf-dir", conf_dir,
                  "--socket", "/var/run/gammamesh/cni.sock", "--timeout", 12)
    assert res.returncode == 0, (res.stdout, res.stderr)
    binary = bin_dir / "gammamesh-cni"
    assert stat.S_IMODE(binary.stat().st_mode) == 0o755
    assert binary.read_bytes() == PLUGIN.read_bytes()
    conf = json.loads(first.read_text())
    assert conf["plugins"][:2] == CONFLIST["plugins"]
    assert conf["plugins"][2] == {"type": "gammamesh-cni", "socket": "/var/run/gammamesh/cni.sock",
                                  "timeout_seconds": 12}, conf["plugins"]
    assert {k: v for k, v in conf.items() if k != "plugins"} == \
        {k: v for k, v in CONFLIST.items() if k != "plugins"}
    assert second.read_text() == second_before      # only the lexically first conflist
    assert sorted(p.name for p in conf_dir.iterdir()) == \
        ["10-k8s.conflist", "20-other.conflist", "30-single.conf"], "temporary files left"
    assert sorted(p.name for p in bin_dir.iterdir()) == ["gammamesh-cni"]

    res = install("install", "--bin-dir", bin_dir, "--conf-dir", conf_dir,
                  "--socket", "/run/gm/other.sock", "--timeout", 20)
    assert res.returncode == 0, (res.stdout, res.stderr)
    plugins = json.loads(first.read_text())["plugins"]
    assert [p["type"] for p in plugins] == ["bridge", "portmap", "gammamesh-cni"], plugins
    assert plugins[2] == {"type": "gammamesh-cni", "socket": "/run/gm/other.sock",
                          "timeout_seconds": 20}, plugins

    res = install("uninstall", "--conf-dir", conf_dir, "--bin-dir", bin_dir)
    assert res.returncode == 0, (res.stdout, res.stderr)
    assert json.loads(first.read_text()) == CONFLIST
    assert not binary.exists()
    assert second.read_text() == second_before


def test_install_without_a_network_configuration_fails(cni_dirs):
    bin_dir, conf_dir = cni_dirs
    res = install("install", "--bin-dir", bin_dir, "--conf-dir", conf_dir)
    assert res.returncode == 1 and "no network configuration" in res.stderr, res
    # a first file that is no network configuration (no name) is left as it is
    (conf_dir / "10-bridge.conf").write_text(json.dumps(CONFLIST["plugins"][0]))
    res = install("install", "--bin-dir", bin_dir, "--conf-dir", conf_dir)
    assert res.returncode == 1 and "not a network configuration" in res.stderr, res
    assert sorted(p.name for p in conf_dir.iterdir()) == ["10-bridge.conf"]


def test_install_makes_a_first_single_plugin_conf_a_list(cni_dirs):
    """The runtime uses the lexically first file: a single-plugin *.conf there becomes
    NAME.conflist holding that plugin and ours (the .conf goes); uninstall leaves the list with
    the plugin alone. A .conflist of the same name already there: refused, nothing touched."""
    bin_dir, conf_dir = cni_dirs
    single = dict(CONFLIST["plugins"][0], cniVersion="0.4.0", name="mynet")
    (conf_dir / "05-mynet.conf").write_text(json.dumps(single))
    later = conf_dir / "10-k8s.conflist"
    later.write_text(json.dumps(CONFLIST))
    res = install("install", "--bin-dir", bin_dir, "--conf-dir", conf_dir)
    assert res.returncode == 0, res
    assert sorted(p.name for p in conf_dir.iterdir()) == ["05-mynet.conflist", "10-k8s.conflist"]
    conf = json.loads((conf_dir / "05-mynet.conflist").read_text())
    assert conf["cniVersion"] == "0.4.0" and conf["name"] == "mynet", conf
    assert conf["plugins"][0] == CONFLIST["plugins"][0], conf
    assert [p["type"] for p in conf["plugins"]] == ["bridge", "gammamesh-cni"], conf
    assert json.loads(later.read_text()) == CONFLIST
    res = install("uninstall", "--conf-dir", conf_dir)
    assert res.returncode == 0, res
    assert json.loads((conf_dir / "05-mynet.conflist").read_text())["plugins"] == \
        [CONFLIST["plugins"][0]]
    (conf_dir / "05-mynet.conf").write_text(json.dumps(single))
    res = install("install", "--bin-dir", bin_dir, "--conf-dir", conf_dir)
    assert res.returncode == 1 and "exists" in res.stderr, res
    assert json.loads((conf_dir / "05-mynet.conf").read_text()) == single


def test_install_watch_puts_the_entry_back_after_a_rewrite(cni_dirs):
    """`install --watch`: the network plugin rewriting its conflist (kindnetd does when it
    restarts) loses the entry; the watcher adds it back, leaves another plugin appended after it
    alone (no tug of war), and stops on SIGTERM leaving the entry in place."""
    import signal
    import subprocess
    bin_dir, conf_dir = cni_dirs
    first = conf_dir / "10-k8s.conflist"
    first.write_text(json.dumps(CONFLIST))

    def types():
        return [p["type"] for p in json.loads(first.read_text())["plugins"]]

    p = subprocess.Popen([str(PLUGIN), "install", "--bin-dir", str(bin_dir), "--conf-dir",
                          str(conf_dir), "--watch", "1"], stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: types() == ["bridge", "portmap", "gammamesh-cni"], 5,
                 what="the first install")
        first.write_text(json.dumps(CONFLIST))      # the network plugin rewrites it
        wait_for(lambda: types() == ["bridge", "portmap", "gammamesh-cni"], 5,
                 what="the entry to come back")
        conf = json.loads(first.read_text())
        conf["plugins"].append({"type": "other-chained"})
        first.write_text(json.dumps(conf))
        time.sleep(2.5)
        assert types() == ["bridge", "portmap", "gammamesh-cni", "other-chained"], types()
        p.send_signal(signal.SIGTERM)
        _, err = p.communicate(timeout=10)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 0, err
    assert "installing again" in err and err.count("chained into") == 2, err
    assert types() == ["bridge", "portmap", "gammamesh-cni", "other-chained"]
    for bad in (["--watch", "0"], ["--watch", "1x"], ["--timeout", "30x"]):
        res = install("install", "--bin-dir", bin_dir, "--conf-dir", conf_dir, *bad)
        assert res.returncode == 2 and "usage" in res.stderr, (bad, res)
