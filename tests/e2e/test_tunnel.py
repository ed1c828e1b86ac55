"""Pod → Service VIP → pod through the real ztunnels on the demo lab: load balancing, TLS on the
underlay, 1 GiB intact, half-close, 500 concurrent connections, metrics and access logs, and a
namespace opting out of the mesh and back in."""

import collections
import json
import uuid

import pytest

from conftest import (CLIENT_ID, DEMO, SERVICE_B_ID, Capture, Lines, capture_of,
                      check_sandbox_recreation, echo_once, make_lab,
                      metric_sum, wait_for)


@pytest.fixture(scope="module")
def lab(request, tmp_path_factory):
    lab = make_lab(request, tmp_path_factory, "tun")
    # a long keepalive: no PING finds a dead tunnel before the sandbox test's streams do
    lab.up(DEMO, extra_env={"GMLAB_ZTUNNEL_ARGS": "--hbone-keepalive 60s"})
    return lab


# N connections, one HTTP/1.1 request each (Connection: close); prints the JSON list of
# (status line, Hostname) per connection.
MANY_GETS = r"""
import json, socket, sys
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
out = []
for i in range(n):
    try:
        s = socket.create_connection((host, port), timeout=5)
        s.sendall(b"GET /lb/%d HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n"
                  % (i, host.encode()))
        data = bytearray()
        while True:
            b = s.recv(65536)
            if not b:
                break
            data += b
        s.close()
        text = data.decode("latin-1")
        status = text.split("\r\n", 1)[0]
        names = [l.split("=", 1)[1] for l in text.split("\n") if l.startswith("Hostname=")]
        out.append([status, names[0].strip() if names else None])
    except Exception as e:
        out.append(["error %s" % e, None])
print(json.dumps(out))
"""


def test_vip_load_balanced_per_connection(lab, client, remote_b):
    """30 connections to service-b's VIP reach every ready endpoint, including the pods on the
    other node; one keep-alive connection stays on one pod (balancing is per connection)."""
    backends = {p["name"] for p in lab.pods("demo", app="service-b")}
    assert len(backends) == 3
    results = lab.py_json(client["netns"], MANY_GETS, "service-b.demo", "80", "30", timeout=90)
    bad = [r for r in results if not r[0].startswith("HTTP/1.1 200")]
    assert not bad, "requests through the VIP failed: %s" % bad[:5]
    counts = collections.Counter(r[1] for r in results)
    assert set(counts) == backends, \
        "30 connections should reach all 3 endpoints, got %s" % dict(counts)
    assert counts[remote_b["name"]] > 0
    assert max(counts.values()) <= 24, "balancing looks sticky: %s" % dict(counts)

    res = lab.exec("demo/app=client", "echo-client", "http://service-b.demo/keepalive",
                   "--count", "8", timeout=60, check=True)
    names = {l.split("Hostname=", 1)[1].strip() for l in res.stdout.splitlines()
             if "Hostname=" in l}
    codes = [l for l in res.stdout.splitlines() if "StatusCode=" in l]
    assert len(codes) == 8 and all(l.endswith("StatusCode=200") for l in codes), res.stdout
    assert len(names) == 1, "one keep-alive connection must stay on one endpoint: %s" % names

    # both ztunnels logged the connection with the mTLS identities
    def logged():
        log1 = lab.log("ztunnel-" + client["node"])
        log2 = lab.log("ztunnel-" + remote_b["node"])
        out = [l for l in log1.splitlines() if "direction=outbound" in l
               and "dst.workload=%s" % remote_b["name"] in l]
        inn = [l for l in log2.splitlines() if "direction=inbound" in l
               and "dst.workload=%s" % remote_b["name"] in l]
        return (out, inn) if out and inn else None
    out, inn = wait_for(logged, 10, what="access-log lines on both nodes")
    for line in out[:1] + inn[:1]:
        assert "src.identity=%s" % CLIENT_ID in line, line
        assert "dst.identity=%s" % SERVICE_B_ID in line, line
        assert "mtls=true" in line, line


def test_underlay_carries_only_tls(lab, client, remote_b, tmp_path):
    """A unique payload sent pod → pod across nodes never appears on the underlay, which does
    see the HBONE connection to port 15008 (so the capture itself works)."""
    secret = "gm-e2e-secret-%s" % uuid.uuid4().hex
    cap = Capture(lab, lab.underlay, "br0", tmp_path / "underlay.pcap")
    try:
        direct = echo_once(lab, client["netns"], remote_b["ip"], 9090, secret * 50)
        via_http = lab.exec("demo/app=client", "echo-client",
                           "http://%s/%s" % (remote_b["ip"] + ":8080", secret), "-H",
                           "X-Secret:" + secret, timeout=30)
    finally:
        cap.stop()
    assert direct["ok"], "echo through the tunnel failed: %s" % direct
    assert "StatusCode=200" in via_http.stdout and secret in via_http.stdout, via_http.stdout
    hbone = cap.packets("tcp port 15008 and host %s and host %s" % (client["ip"],
                                                                     remote_b["ip"]))
    assert len(hbone) >= 6, "the capture saw no HBONE traffic between the pods: %s" % hbone
    assert not cap.packets("tcp port 9090 or tcp port 8080"), \
        "application ports appeared on the underlay (plaintext path)"
    assert secret.encode() not in cap.data(), "the payload crossed the underlay in plaintext"


# A sink for one connection on PORT: reads to EOF (once the file GO exists, when given),
# prints {"n": bytes, "sha256": …}, then answers "<bytes> <sha256>" and closes.
SINK = r"""
import hashlib, json, os, socket, sys, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1])))
s.listen(1)
print("ready", flush=True)
s.settimeout(120)
c, _ = s.accept()
c.settimeout(120)
while len(sys.argv) > 2 and not os.path.exists(sys.argv[2]):
    time.sleep(0.05)
h, n = hashlib.sha256(), 0
while True:
    b = c.recv(1 << 20)
    if not b:
        break
    h.update(b)
    n += len(b)
print(json.dumps({"n": n, "sha256": h.hexdigest()}), flush=True)
try:
    c.sendall(("%d %s\n" % (n, h.hexdigest())).encode())
except OSError:
    pass  # a sender that does not wait for the answer
c.close()
"""

# Sends TOTAL bytes of distinct 1 MiB blocks, half-closes, reads the sink's answer.
SEND = r"""
import hashlib, json, os, socket, struct, sys, time
host, port, total = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
base = bytearray(os.urandom(1 << 20))
s = socket.create_connection((host, port), timeout=120)
h, n, t = hashlib.sha256(), 0, time.monotonic()
while n < total:
    base[:8] = struct.pack(">Q", n)
    blk = bytes(base[: min(len(base), total - n)])
    s.sendall(blk)
    h.update(blk)
    n += len(blk)
s.shutdown(socket.SHUT_WR)
answer = s.makefile("rb").readline().decode().split()
print(json.dumps({"sent": n, "sha256": h.hexdigest(), "answer": answer,
                  "seconds": round(time.monotonic() - t, 2)}))
"""


def test_one_gib_arrives_intact(lab, client, remote_b):
    """1 GiB through one tunnelled connection, checksummed at both ends; the sink answers
    after the client's half-close, so the reverse direction outlives the FIN."""
    sink = lab.spawn_piped(remote_b["netns"], "/usr/bin/python3", "-c", SINK, "7777")
    assert sink.stdout.readline().strip() == "ready"
    total = 1 << 30
    res = lab.py_json(client["netns"], SEND, remote_b["ip"], "7777", str(total), timeout=180)
    lab.stop(sink)
    assert res["answer"] == [str(total), res["sha256"]], \
        "sent %d bytes sha256 %s, the sink saw %s" % (res["sent"], res["sha256"], res["answer"])


# Echo with half-close, read late: the client (with a small receive buffer, so the echo waits
# in the proxies rather than in its socket) writes SIZE bytes and shuts down its write side,
# and only then (or after 2 s, should back-pressure stop the writer) starts reading, like an
# application that sends a request, half-closes and reads the answer later. The echo must be
# complete and end with EOF.
HALF_CLOSE = r"""
import hashlib, json, os, socket, sys, threading, time
host, port, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
data = os.urandom(size)
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
s.settimeout(30)
s.connect((host, port))
got = bytearray()
written = threading.Event()
def reader():
    written.wait(2)
    time.sleep(1)
    while True:
        b = s.recv(1 << 20)
        if not b:
            return
        got.extend(b)
t = threading.Thread(target=reader)
t.start()
s.sendall(data)
s.shutdown(socket.SHUT_WR)
written.set()
t.join(60)
print(json.dumps({"eof": not t.is_alive(), "sent": len(data), "received": len(got),
                  "intact": hashlib.sha256(got).digest() == hashlib.sha256(data).digest(),
                  "prefix_intact": bytes(got) == data[:len(got)]}))
"""


def test_half_close_echo(lab, client, remote_b):
    """Client writes 3 MiB, shuts down its write side, reads late, and still receives the
    whole echo (everything the echo server sent before its FIN)."""
    control = lab.py_json(remote_b["netns"], HALF_CLOSE, "127.0.0.1", "9090", str(3 << 20),
                          timeout=90)
    assert control["eof"] and control["intact"], \
        "the echo server alone (loopback, not captured) fails this: %s" % control
    res = lab.py_json(client["netns"], HALF_CLOSE, remote_b["ip"], "9090", str(3 << 20),
                      timeout=90)
    assert res["eof"], "no EOF after the echo: %s" % res
    assert res["received"] == res["sent"] and res["intact"], \
        "through the tunnel the echo was cut short (the echo server alone passes): %s" % res


# A sender that writes as fast as the connection takes until it has made no progress for 1 s;
# prints {"stalled_at": bytes}; once the file FINISH exists, writes what it still holds,
# shuts down and prints {"n": bytes, "sha256": …}.
STALLED_SOURCE = r"""
import hashlib, json, os, socket, sys, time
host, port, finish = sys.argv[1], int(sys.argv[2]), sys.argv[3]
s = socket.create_connection((host, port), timeout=10)
s.setblocking(False)
chunk = os.urandom(1 << 20)
h, n, last = hashlib.sha256(), 0, time.monotonic()
pending = b""
while time.monotonic() - last < 1.0 and n < (4 << 30):
    try:
        k = s.send(chunk)
    except BlockingIOError:
        time.sleep(0.01)
        continue
    h.update(chunk[:k])
    n += k
    last = time.monotonic()
print(json.dumps({"stalled_at": n}), flush=True)
while not os.path.exists(finish):
    time.sleep(0.05)
s.setblocking(True)
s.shutdown(socket.SHUT_WR)
print(json.dumps({"n": n, "sha256": h.hexdigest()}), flush=True)
"""


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        return int([l for l in f if l.startswith("VmRSS:")][0].split()[1])


def test_receiver_that_stops_reading_holds_the_sender(lab, client, remote_b, tmp_path):
    """Back-pressure end to end: an application that stops reading stops its peer's writes
    within the sockets' and tunnel's windows; the ztunnels do not buffer what it has not read
    (RSS grows by less than 32 MiB each), and once it reads again every byte arrives, in
    order."""
    pids = [lab.daemon("ztunnel-" + n)["pid"] for n in (client["node"], remote_b["node"])]
    go, finish = tmp_path / "go", tmp_path / "finish"
    sink = lab.spawn_piped(remote_b["netns"], "/usr/bin/python3", "-c", SINK, "9101", str(go))
    sink_out = Lines(sink)
    assert sink_out.next(10) == "ready"
    before = [rss_kib(p) for p in pids]
    source = lab.spawn_piped(client["netns"], "/usr/bin/python3", "-c", STALLED_SOURCE,
                             remote_b["ip"], "9101", str(finish))
    source_out = Lines(source)
    stalled = source_out.next_json(60)
    assert stalled is not None, "the sender never stalled"
    grown = [rss_kib(p) - b for p, b in zip(pids, before)]
    go.touch()
    finish.touch()
    sent = source_out.next_json(60)
    got = sink_out.next_json(60)
    lab.stop(source)
    lab.stop(sink)
    assert stalled["stalled_at"] < (256 << 20), \
        "%d MiB went out before the sender stalled" % (stalled["stalled_at"] >> 20)
    assert all(g < 32 << 10 for g in grown), \
        "ztunnel RSS grew by %s KiB while the receiver did not read" % grown
    assert sent and got and got == sent, (sent, got)


# CONNS concurrent connections with selectors: each sends a line and waits for its echo; all
# are held open until every one has echoed (so they really are concurrent).
CONCURRENT = r"""
import json, selectors, socket, sys, time
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
sel = selectors.DefaultSelector()
conns, errors, peak = {}, [], 0
t0 = time.monotonic()
for i in range(n):
    s = socket.socket()
    s.setblocking(False)
    s.connect_ex((host, port))
    conns[s] = {"i": i, "msg": b"conn-%05d\n" % i, "sent": False, "got": b""}
    sel.register(s, selectors.EVENT_WRITE)
done = 0
deadline = time.monotonic() + 60
while done < n and time.monotonic() < deadline:
    for key, mask in sel.select(timeout=1):
        s, c = key.fileobj, conns[key.fileobj]
        if not c["sent"]:
            err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                errors.append("conn %d: connect error %d" % (c["i"], err))
                sel.unregister(s); done += 1; continue
            s.send(c["msg"]); c["sent"] = True
            sel.modify(s, selectors.EVENT_READ)
            continue
        try:
            b = s.recv(4096)
        except OSError as e:
            errors.append("conn %d: %s" % (c["i"], e)); sel.unregister(s); done += 1; continue
        if not b:
            errors.append("conn %d: closed early after %r" % (c["i"], c["got"]))
            sel.unregister(s); done += 1; continue
        c["got"] += b
        if len(c["got"]) >= len(c["msg"]):
            sel.unregister(s); done += 1
open_now = sum(1 for s in conns if s.fileno() >= 0)
ok = sum(1 for c in conns.values() if c["got"] == c["msg"])
for s in conns:
    s.close()
print(json.dumps({"ok": ok, "open_at_end": open_now, "errors": errors[:10],
                  "n_errors": len(errors), "seconds": round(time.monotonic() - t0, 2)}))
"""


def test_500_concurrent_connections(lab, client):
    res = lab.py_json(client["netns"], CONCURRENT, lab.vip("demo", "service-b"), "9090", "500",
                      timeout=120)
    assert res["n_errors"] == 0, res
    assert res["ok"] == 500 and res["open_at_end"] == 500, res


def test_metrics_report_mtls_identities(lab, client, remote_b):
    """Opened/closed/sent/received count the demo's connections with both reporters and
    connection_security_policy="mutual_tls"."""
    names = ["istio_tcp_connections_opened_total", "istio_tcp_connections_closed_total",
             "istio_tcp_sent_bytes_total", "istio_tcp_received_bytes_total"]
    ids = {"source_principal": CLIENT_ID, "destination_principal": SERVICE_B_ID,
           "connection_security_policy": "mutual_tls"}

    def snapshot():
        src = lab.metrics(client["node"])
        dst = lab.metrics(remote_b["node"])
        return {n: (metric_sum(src, n, reporter="source", **ids),
                    metric_sum(dst, n, reporter="destination", **ids)) for n in names}

    before = snapshot()
    payload = "m" * 10000
    for _ in range(5):
        assert echo_once(lab, client["netns"], remote_b["ip"], 9090, payload)["ok"]

    def grown():
        now = snapshot()
        for n in names:
            need = 5 if "connections" in n else 5 * len(payload)
            for side in (0, 1):
                if now[n][side] - before[n][side] < need:
                    return None
        return now
    try:
        wait_for(grown, 10, what="metrics to count 5 connections of 10000 bytes each way")
    except AssertionError:
        pytest.fail("metrics did not grow as expected:\nbefore %s\nafter  %s"
                    % (json.dumps(before), json.dumps(snapshot())))


CHURN = """
apiVersion: apps/v1
kind: Deployment
metadata:
  name: churn
  namespace: demo
spec:
  replicas: 1
  selector:
    matchLabels: {app: churn}
  template:
    metadata:
      labels: {app: churn}
    spec:
      serviceAccountName: service-b
      containers:
      - name: echo
        image: registry.k8s.io/gateway-api/conformance/echo-advanced:v0.1.0
        args: ["--port=8080", "--tcp=9090"]
"""


def test_metrics_of_deleted_workloads_are_evicted(lab, client):
    """Pod churn must not grow /metrics without bound: once a workload is gone, the series that
    name it go from both nodes' metrics (DESIGN §9)."""
    lab.apply(CHURN)
    pod = wait_for(lambda: [p for p in lab.pods("demo", app="churn") if p["ready"]], 30,
                   what="the churn pod")[0]
    assert echo_once(lab, client["netns"], pod["ip"], 9090, "churn")["ok"]
    nodes = sorted({client["node"], pod["node"]})

    def series():
        return sum(1 for node in nodes for _, labels, _ in lab.metrics(node)
                   if pod["name"] in (labels.get("destination_workload"),
                                      labels.get("source_workload")))
    wait_for(lambda: series() >= 2, 10, what="series naming the churn pod on both nodes")
    lab.delete(CHURN)
    wait_for(lambda: series() == 0, 15, what="the deleted pod's series to be evicted")
    assert echo_once(lab, client["netns"], lab.vip("demo", "service-b"), 9090, "after")["ok"]


DEMO_NS_UNLABELLED = """
apiVersion: v1
kind: Namespace
metadata:
  name: demo
"""

DEMO_NS_ENROLLED = """
apiVersion: v1
kind: Namespace
metadata:
  name: demo
  labels:
    gammamesh.io/dataplane-mode: ambient
"""


def test_opt_out_releases_pods_and_opt_in_captures_them_again(lab, client, remote_b):
    """Removing the namespace's label releases its pods (capture rules and listeners gone,
    traffic flows without ztunnel); putting it back captures them again. Runs last in this
    module (it changes the demo namespace, and restores it)."""
    enrolled = {"table": True, "ipv6_table": True, "listeners": [15001, 15006, 15008],
                "listed": True}
    released = {"table": False, "ipv6_table": False, "listeners": [], "listed": False}
    assert capture_of(lab, remote_b) == enrolled

    def opened():
        return metric_sum(lab.metrics(remote_b["node"]), "istio_tcp_connections_opened_total",
                          reporter="destination")

    def settle(state, what):
        for pod in (client, remote_b):
            wait_for(lambda: capture_of(lab, pod) == state, 10, what=what % pod["name"])

    try:
        lab.apply(DEMO_NS_UNLABELLED)
        settle(released, "%s to be released")
        before = opened()
        assert echo_once(lab, client["netns"], remote_b["ip"], 9090, "plain-after-opt-out")["ok"]
        assert opened() == before, "a released pod's traffic still went through ztunnel"
    finally:
        lab.apply(DEMO_NS_ENROLLED)
    settle(enrolled, "%s to be captured again")
    before = opened()
    assert echo_once(lab, client["netns"], remote_b["ip"], 9090, "hbone-after-opt-in")["ok"]
    wait_for(lambda: opened() > before, 10,
             what="the connection after opting in to go through ztunnel")


def test_a_recreated_sandbox_is_captured_again(lab, client, remote_b):
    """Kubelet re-creates a dead sandbox under the same pod object and IP: the annotation still
    names the same path, now a new netns. ztunnel notices and captures the new one."""
    check_sandbox_recreation(lab, client, remote_b)
