"""Shared fixtures for the end-to-end tests: a lab per test module, commands inside its
namespaces, packet captures on its underlay, certificates from its CA, metrics.

Everything runs inside the lab's own network namespaces (198.18.0.0/15); nothing touches the
machine's namespace. Every lab and every process a test starts is stopped in a finalizer, also
when the test fails. Without root the tests are skipped, unless GM_E2E_REQUIRED=1 (CI), which
turns the skip into a failure.
"""

import json
import os
import queue
import re
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LAB_TOOL = REPO / "tests" / "lab" / "lab"
DEMO = REPO / "packaging" / "examples" / "demo-lab.yaml"
PEER = Path(__file__).resolve().parent / "hbone_peer.py"
PYTHON = "/usr/bin/python3"          # Debian's, where python3-h2 is installed
BUILD = Path(os.environ.get("GM_BUILD_DIR") or REPO / "build").resolve()

CLIENT_ID = "spiffe://cluster.local/ns/demo/sa/client"
SERVICE_B_ID = "spiffe://cluster.local/ns/demo/sa/service-b"


# ---------------------------------------------------------------------------------------------
# skip or fail


def required():
    return os.environ.get("GM_E2E_REQUIRED") == "1"


def need(ok, reason):
    """Skip the test (or module) when a precondition is missing; fail under GM_E2E_REQUIRED=1."""
    if ok:
        return
    if required():
        pytest.fail("GM_E2E_REQUIRED=1 but: " + reason, pytrace=False)
    pytest.skip(reason)


def need_lab():
    need(os.geteuid() == 0, "end-to-end tests need root (they build network namespaces); "
         "run: sudo GM_E2E_REQUIRED=1 /usr/bin/python3 -m pytest -v tests/e2e")
    for prog in ("ztunnel/ztunnel", "tests/echo/echo-server", "tests/echo/echo-client"):
        need(os.access(BUILD / prog, os.X_OK),
             "%s is not built (ninja -C %s)" % (BUILD / prog, BUILD))
    for tool in ("ip", "nft", "openssl", "curl", "nsenter"):
        need(shutil.which(tool) is not None, "%s is not installed" % tool)


# ---------------------------------------------------------------------------------------------
# processes: every one in its own session, killed as a group on timeout


def run(argv, timeout=60, input=None, env=None, check=False):
    """Run argv to completion (stdout/stderr captured as text). On timeout the whole process
    group is killed and TimeoutError raised, so nothing is left behind."""
    p = subprocess.Popen(argv, stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                         start_new_session=True)
    try:
        out, err = p.communicate(input, timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(p)
        out, err = p.communicate()
        raise TimeoutError("timed out after %ss: %s\nstdout: %s\nstderr: %s"
                           % (timeout, " ".join(map(str, argv)), out[-2000:], err[-2000:]))
    res = subprocess.CompletedProcess(argv, p.returncode, out, err)
    if check and p.returncode != 0:
        raise AssertionError("command failed (exit %d): %s\nstdout: %s\nstderr: %s"
                             % (p.returncode, " ".join(map(str, argv)), out[-3000:],
                                err[-3000:]))
    return res


def kill_group(p, grace=3.0):
    """SIGTERM then SIGKILL the process group led by Popen p; reap it."""
    if p.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(p.pid, sig)
        except ProcessLookupError:
            pass
        try:
            p.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def wait_for(pred, timeout, interval=0.1, what="condition"):
    """Poll pred() until it returns something truthy; return that, or raise AssertionError."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise AssertionError("timed out after %.1fs waiting for %s" % (timeout, what))
        time.sleep(interval)


# ---------------------------------------------------------------------------------------------
# the lab


class Lab:
    """One named lab (GMLAB_NAME=<name>, run dir /run/gmlab-<name>) driven by tests/lab/lab."""

    def __init__(self, name, workdir):
        self.name = name
        self.workdir = Path(workdir)
        self.env = dict(os.environ, GMLAB_NAME=name, GM_BUILD_DIR=str(BUILD))
        self.env.pop("GMLAB_RUN", None)
        self.prefix = "gmlab-%s_" % name
        self.bg = []            # background processes started by tests (Popen)
        self.files = 0
        self._status = None

    # -- the lab command line -----------------------------------------------------------------

    def lab(self, *args, timeout=150, input=None, check=True):
        return run([str(LAB_TOOL)] + [str(a) for a in args], timeout=timeout, input=input,
                   env=self.env, check=check)

    def manifest(self, text):
        """Write a manifest into the work dir; returns its path."""
        self.files += 1
        path = self.workdir / ("manifest-%d.yaml" % self.files)
        path.write_text(text)
        return path

    def up(self, *files, nodes=2, extra_env=None, flags=()):
        if extra_env:
            self.env.update(extra_env)
        self.lab("up", "--nodes", nodes, *flags, *files)
        self._status = None

    def apply(self, text):
        self.lab("apply", self.manifest(text))
        self._status = None

    def delete(self, text):
        self.lab("delete", self.manifest(text))
        self._status = None

    def down(self):
        return self.lab("down", timeout=120, check=False)

    def close(self):
        """Finalizer: stop what the tests started in the lab, keep the lab's logs (daemons and
        pods) in the module's work dir, then bring the lab down."""
        for p in reversed(self.bg):
            kill_group(p)
        self.bg.clear()
        self.keep_logs()
        res = self.down()
        if res.returncode != 0:
            print("lab down %s failed: %s" % (self.name, res.stderr))

    def keep_logs(self):
        """Copies the lab's log directory to <work dir>/lab-logs (pytest keeps the last runs'
        work dirs), so that a failure can be read after `lab down` removed the run dir."""
        src = Path("/run/gmlab-%s" % self.name) / "logs"
        try:
            if src.is_dir():
                shutil.copytree(src, self.workdir / "lab-logs", dirs_exist_ok=True)
        except OSError as e:
            print("keeping the logs of lab %s failed: %s" % (self.name, e))

    # -- what is running ---------------------------------------------------------------------

    def status(self, fresh=False):
        if fresh or self._status is None:
            self._status = json.loads(self.lab("status", "--json", timeout=30).stdout)
        return self._status

    def pods(self, ns, **labels):
        return [p for p in self.status(fresh=True)["pods"] if p["namespace"] == ns
                and all(p["labels"].get(k) == v for k, v in labels.items())]

    def pod(self, ns, **labels):
        found = self.pods(ns, **labels)
        assert found, "no pod in %s with %s" % (ns, labels)
        return found[0]

    def service(self, ns, name):
        for s in self.status()["services"]:
            if s["namespace"] == ns and s["name"] == name:
                return s
        raise AssertionError("no Service %s/%s" % (ns, name))

    def vip(self, ns, name):
        return self.service(ns, name)["vip"]

    def daemon(self, name):
        for d in self.status(fresh=True)["daemons"]:
            if d["name"] == name:
                return d
        raise AssertionError("no daemon %s" % name)

    def node_netns(self, node):
        return self.prefix + node

    @property
    def underlay(self):
        return self.prefix + "underlay"

    @property
    def run_dir(self):
        return Path(self.status()["run"])

    @property
    def ca_cert(self):
        return self.run_dir / "ca" / "ca.crt"

    @property
    def ca_key(self):
        return self.run_dir / "ca" / "ca.key"

    # -- commands in the lab's namespaces ------------------------------------------------------

    def exec(self, target, *argv, timeout=60, input=None, check=False):
        """`lab exec TARGET -- argv…` (TARGET: NS/POD or NS/LABEL=VALUE)."""
        return self.lab("exec", target, "--", *argv, timeout=timeout, input=input, check=check)

    def netns_run(self, netns, *argv, timeout=60, input=None, check=False):
        return run(["ip", "netns", "exec", netns] + [str(a) for a in argv], timeout=timeout,
                   input=input, env=self.env, check=check)

    def nft_tables(self, netns):
        """The nft tables of a namespace, as `nft list tables` names them ("table ip x")."""
        return self.netns_run(netns, "nft", "list", "tables", check=True).stdout.splitlines()

    def py(self, netns, code, *args, timeout=60, check=True):
        """Run Python code (Debian's python3) inside a network namespace; returns stdout."""
        res = self.netns_run(netns, PYTHON, "-c", code, *args, timeout=timeout, check=check)
        return res.stdout if check else res

    def py_json(self, netns, code, *args, timeout=60):
        out = self.py(netns, code, *args, timeout=timeout)
        return json.loads(out.strip().splitlines()[-1])

    def spawn(self, netns, *argv, log=None, env=None):
        """A background process in a namespace, stopped by close() (or stop())."""
        out = open(log, "ab") if log else subprocess.DEVNULL
        p = subprocess.Popen(["ip", "netns", "exec", netns] + [str(a) for a in argv],
                             stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                             env=env or self.env, start_new_session=True)
        if log:
            out.close()
        self.bg.append(p)
        return p

    def spawn_piped(self, netns, *argv):
        """A background process whose stdout the test reads line by line."""
        p = subprocess.Popen(["ip", "netns", "exec", netns] + [str(a) for a in argv],
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=self.env,
                             start_new_session=True)
        self.bg.append(p)
        return p

    def stop(self, p):
        kill_group(p)
        if p in self.bg:
            self.bg.remove(p)

    def http_get(self, node, port, path, timeout=10):
        """GET http://127.0.0.1:PORT/PATH inside a node's namespace: (status, body)."""
        res = self.netns_run(self.node_netns(node), "curl", "-s", "-m", str(timeout), "-o",
                             "-", "-w", "\n%{http_code}", "http://127.0.0.1:%d%s" % (port, path),
                             timeout=timeout + 5)
        body, _, code = res.stdout.rpartition("\n")
        return int(code or 0), body

    def metrics(self, node, port=15020):
        status, body = self.http_get(node, port, "/metrics")
        assert status == 200, "GET /metrics on %s: %s" % (node, status)
        return parse_metrics(body)

    def log(self, daemon):
        return self.lab("logs", daemon, timeout=30).stdout


def make_lab(request, tmp_path_factory, tag):
    """A Lab object for a module, with its finalizer registered before anything is built."""
    need_lab()
    name = "e2e%s%d" % (tag, os.getpid() % 100000)
    lab = Lab(name, tmp_path_factory.mktemp("lab-" + tag))
    request.addfinalizer(lab.close)
    lab.down()               # a crashed earlier run with the same name
    return lab


# ---------------------------------------------------------------------------------------------
# captures on the underlay


class Capture:
    """tcpdump -w inside a lab namespace (never the machine's own)."""

    def __init__(self, lab, netns, iface, path, bpf="tcp"):
        need(shutil.which("tcpdump") is not None, "tcpdump is not installed")
        self.lab, self.path = lab, Path(path)
        self.p = lab.spawn_piped(netns, "tcpdump", "-Z", "root", "--immediate-mode", "-i", iface,
                                 "-n", "-U", "-s", "0",
                                 "-w", str(self.path), bpf)
        # tcpdump says "listening on …" on stderr once the capture is armed
        line = self.p.stderr.readline()
        assert "listening on" in line, "tcpdump did not start: %r" % line

    def stop(self):
        time.sleep(0.3)             # let the last packets reach the ring buffer
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGINT)
            try:
                self.p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        self.lab.stop(self.p)
        return self

    def data(self):
        return self.path.read_bytes()

    def packets(self, bpf):
        """Packets in the capture matching a filter (text lines of tcpdump -r)."""
        res = run(["tcpdump", "-r", str(self.path), "-n", bpf], timeout=60)
        return [l for l in res.stdout.splitlines() if l.strip()]


# ---------------------------------------------------------------------------------------------
# certificates (openssl CLI)


def make_ca(dirpath, name):
    """A self-signed EC P-256 CA, like the lab's but a different one."""
    d = Path(dirpath)
    crt, key = d / ("%s.crt" % name), d / ("%s.key" % name)
    run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(crt), "-days", "1",
         "-subj", "/CN=%s" % name, "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign"], check=True)
    return crt, key


def mint_leaf(dirpath, name, ca_crt, ca_key, uri):
    """A workload certificate for a SPIFFE ID signed by the given CA: (cert, key)."""
    d = Path(dirpath)
    key, csr, crt, ext = (d / ("%s.key" % name), d / ("%s.csr" % name), d / ("%s.crt" % name),
                          d / ("%s.ext" % name))
    ext.write_text("basicConstraints=critical,CA:FALSE\n"
                   "keyUsage=critical,digitalSignature,keyAgreement\n"
                   "extendedKeyUsage=serverAuth,clientAuth\n"
                   "subjectAltName=critical,URI:%s\n" % uri)
    run(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt",
         "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", str(key), "-out", str(csr),
         "-subj", "/O=gammamesh-e2e"], check=True)
    run(["openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca_crt), "-CAkey", str(ca_key),
         "-CAcreateserial", "-out", str(crt), "-days", "1", "-extfile", str(ext)], check=True)
    return crt, key


# ---------------------------------------------------------------------------------------------
# Prometheus text


_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text):
    """[(name, {label: value}, float)] from the Prometheus text format."""
    out = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        if m:
            labels = dict(_LABEL.findall(m.group(2) or ""))
            out.append((m.group(1), labels, float(m.group(3))))
    return out


def metric_sum(samples, name, **labels):
    return sum(v for n, l, v in samples
               if n == name and all(l.get(k) == val for k, val in labels.items()))


# The demo's pods, for the modules whose module-scoped `lab` runs the demo manifests.
@pytest.fixture(scope="module")
def client(lab):
    return lab.pod("demo", app="client")


@pytest.fixture(scope="module")
def remote_b(lab, client):
    """A service-b pod on the other node than the client."""
    far = [p for p in lab.pods("demo", app="service-b") if p["node"] != client["node"]]
    assert far, "the demo lab should put a service-b pod on another node than the client"
    return far[0]


# ---------------------------------------------------------------------------------------------
# small programs run inside pod namespaces (python3 -c)

# Connect to HOST PORT, send PAYLOAD (hex), half-close, read until EOF (or TIMEOUT);
# print JSON {"ok": echoed == sent, "received": text, "error": …}.
ECHO_ONCE = r"""
import json, socket, sys
host, port = sys.argv[1], int(sys.argv[2])
payload, timeout = bytes.fromhex(sys.argv[3]), float(sys.argv[4])
res = {"received": "", "error": None}
try:
    s = socket.create_connection((host, port), timeout=timeout)
    s.sendall(payload)
    s.shutdown(socket.SHUT_WR)
    got = bytearray()
    while True:
        b = s.recv(65536)
        if not b:
            break
        got += b
    res["received"] = got.decode("latin-1")
except Exception as e:
    res["error"] = "%s: %s" % (type(e).__name__, e)
res["ok"] = res["received"] == payload.decode("latin-1")
print(json.dumps(res))
"""


def echo_once(lab, netns, host, port, payload, timeout=5):
    """Send payload to a TCP echo and read it back, from inside netns; the result dict."""
    return lab.py_json(netns, ECHO_ONCE, host, str(port), payload.encode().hex(),
                       str(timeout), timeout=timeout + 20)


class Lines:
    """Lines of a background process's stdout, read by a thread, with timeouts."""

    def __init__(self, p):
        self.p = p
        self.q = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self):
        for line in self.p.stdout:
            self.q.put(line.rstrip("\n"))
        self.q.put(None)

    def next(self, timeout):
        """The next line, or None at EOF; raises AssertionError on timeout."""
        try:
            return self.q.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError("no output within %.1fs" % timeout) from None

    def next_json(self, timeout):
        line = self.next(timeout)
        return None if line is None else json.loads(line)


def capture_of(lab, pod):
    """What ztunnel has put in a pod: its capture tables (the reply table is kept on purpose)
    and its listeners; and whether its node's ztunnel lists it as captured."""
    tables = lab.nft_tables(pod["netns"])
    ss = lab.netns_run(pod["netns"], "ss", "-Hltn", check=True).stdout
    ports = sorted({int(l.split()[3].rsplit(":", 1)[1]) for l in ss.splitlines() if l.strip()})
    status, body = lab.http_get(pod["node"], 15000, "/config_dump")
    assert status == 200, status
    listed = [p["pod"] for p in json.loads(body)["pods"]]
    return {"table": "table ip gammamesh" in tables,
            "ipv6_table": "table ip6 gammamesh" in tables,
            "listeners": [p for p in ports if p in (15001, 15006, 15008)],
            "listed": pod["name"] in listed}


def check_sandbox_recreation(lab, client, server):
    """`lab recreate-sandbox` on server (a demo service-b pod with a TCP echo on 9090, on
    another node than client): its pod object, IP and annotation stay as they are, its netns
    is replaced. Its node's ztunnel must capture the new netns (rules, listeners, a new netns
    inode in /config_dump), with traffic to it and from it through ztunnel again."""
    node = server["node"]

    def dump():
        status, body = lab.http_get(node, 15000, "/config_dump")
        assert status == 200, status
        return json.loads(body)

    def entry():
        return {p["pod"]: p for p in dump()["pods"]}.get(server["name"], {})

    def opened(reporter):
        return metric_sum(lab.metrics(node), "istio_tcp_connections_opened_total",
                          reporter=reporter)

    before = entry()
    assert before.get("state") == "captured" and before.get("netns_inode"), before
    moved = dump()["captures_moved"]
    # tunnels from the client's node to the pod, pooled in every worker (connections spread
    # over the workers): they go stale with the old sandbox
    for i in range(8):
        assert echo_once(lab, client["netns"], server["ip"], 9090, "warm-%d" % i)["ok"]

    def retries():
        samples = lab.metrics(client["node"])
        assert any(s[0] == "gammamesh_ztunnel_stream_retries_total" for s in samples)
        return metric_sum(samples, "gammamesh_ztunnel_stream_retries_total")
    retried = retries()
    # the lab waits until the pod's programs and ztunnel's 15008 listen in the new netns
    lab.lab("recreate-sandbox", "--timeout", 40, "demo/" + server["name"], timeout=150)
    after = wait_for(lambda: (e := entry()).get("state") == "captured"
                     and e.get("netns_inode") != before["netns_inode"] and e, 15,
                     what="ztunnel-%s to capture the new netns of %s" % (node, server["name"]))
    assert dump()["captures_moved"] > moved, after
    assert capture_of(lab, server) == {"table": True, "ipv6_table": True,
                                       "listeners": [15001, 15006, 15008], "listed": True}
    assert "pod network namespace replaced" in lab.log("ztunnel-" + node)
    mine = len([p for p in dump()["pods"] if p["state"] == "captured"])
    wait_for(lambda: metric_sum(lab.metrics(node), "gammamesh_ztunnel_capture_moves_total") >= 1
             and metric_sum(lab.metrics(node), "gammamesh_ztunnel_pods", state="captured")
             == mine, 10, what="the capture metrics of ztunnel-%s" % node)
    # inbound: the client's connection ends in the new netns through ztunnel. Tunnels the
    # client's ztunnel pooled to the old sandbox (one per worker) are dead: same IP, another
    # netns. Once they have been quiet for a second (nothing can arrive on them since the old
    # veth went, before `recreate-sandbox` returned), a stream put on one holds the app's bytes
    # until its 200; the reset that answers it opens the stream again on a new tunnel, and
    # makes every worker probe its tunnels to that address. No connection fails. (A stale
    # tunnel that carried traffic within the last second would fail its next stream: its
    # first bytes went out with the CONNECT.) The modules run ztunnel with a 60 s keepalive, so
    # no PING finds the dead tunnels first: a stream is opened again.
    time.sleep(1.2)
    n = opened("destination")
    tries = [echo_once(lab, client["netns"], server["ip"], 9090, "to-the-new-sandbox-%d" % i,
                       timeout=3)["ok"] for i in range(8)]
    assert all(tries), (tries, "streams opened again: %d" % (retries() - retried))
    assert retries() > retried, "no stream was opened again after its stale tunnel failed"
    wait_for(lambda: opened("destination") > n, 10, what="inbound through ztunnel")
    # outbound: the pod's own connections are captured again (the client has a TCP echo too,
    # and no policy)
    n = opened("source")
    assert echo_once(lab, server["netns"], client["ip"], 9090, "from-the-new-sandbox")["ok"]
    wait_for(lambda: opened("source") > n, 10, what="outbound through ztunnel")
