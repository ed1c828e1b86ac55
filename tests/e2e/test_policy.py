"""L4 authorization on new and open connections, plaintext passthrough to pods outside the
mesh, and no plaintext path into the mesh (demo lab plus a plain namespace)."""

import json
import os
import signal
import uuid

import pytest

from conftest import DEMO, Capture, Lines, echo_once, make_lab, wait_for

PLAIN = """
apiVersion: v1
kind: Namespace
metadata:
  name: plain
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: plain-echo
  namespace: plain
spec:
  replicas: 2
  selector:
    matchLabels: {app: plain-echo}
  template:
    metadata:
      labels: {app: plain-echo}
    spec:
      containers:
      - name: echo
        image: registry.k8s.io/gateway-api/conformance/echo-advanced:v0.1.0
        args: ["--port=8080", "--tcp=9090"]
---
apiVersion: v1
kind: Service
metadata:
  name: plain-echo
  namespace: plain
spec:
  selector: {app: plain-echo}
  ports:
  - {name: tcp, port: 9090, targetPort: 9090}
"""

DENY_CLIENT = """
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: deny-client
  namespace: demo
spec:
  selector:
    matchLabels: {app: service-b}
  action: DENY
  rules:
  - from:
    - source:
        principals: ["cluster.local/ns/demo/sa/client"]
"""

ALLOW_SOMEBODY_ELSE = """
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: service-b-callers
  namespace: demo
spec:
  selector:
    matchLabels: {app: service-b}
  action: ALLOW
  rules:
  - from:
    - source:
        principals: ["cluster.local/ns/demo/sa/somebody-else"]
"""

ALLOW_CLIENT_ON_8080 = """
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: service-b-callers
  namespace: demo
spec:
  selector:
    matchLabels: {app: service-b}
  action: ALLOW
  rules:
  - from:
    - source:
        principals: ["cluster.local/ns/demo/sa/client"]
    to:
    - operation:
        ports: ["8080"]
"""

# A long-lived connection: echoes a short line every 0.1 s and reports, as JSON lines, when it
# is established ("open", after 3 echoes) and how it ends ("closed", "stalled", "survived").
LONG_LIVED = r"""
import json, socket, sys, time
host, port, limit = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
t0 = time.monotonic()
def say(**kv):
    kv["t"] = round(time.monotonic() - t0, 3)
    print(json.dumps(kv), flush=True)
try:
    s = socket.create_connection((host, port), timeout=5)
except OSError as e:
    say(event="connect-failed", error=str(e)); sys.exit(0)
s.settimeout(3)
n = 0
while time.monotonic() - t0 < limit:
    msg = b"ping-%06d\n" % n
    try:
        s.sendall(msg)
        got = b""
        while len(got) < len(msg):
            b = s.recv(len(msg) - len(got))
            if not b:
                say(event="closed", echoes=n, how="EOF"); sys.exit(0)
            got += b
    except socket.timeout:
        say(event="stalled", echoes=n); sys.exit(0)
    except OSError as e:
        say(event="closed", echoes=n, how=str(e)); sys.exit(0)
    if got != msg:
        say(event="corrupt", echoes=n, got=got.decode("latin-1")); sys.exit(0)
    n += 1
    if n == 3:
        say(event="open", echoes=n)
    time.sleep(0.1)
say(event="survived", echoes=n)
"""


@pytest.fixture(scope="module")
def lab(request, tmp_path_factory):
    lab = make_lab(request, tmp_path_factory, "pol")
    lab.up(DEMO, lab.manifest(PLAIN))
    return lab


@pytest.fixture(scope="module")
def plain_pods(lab):
    pods = lab.pods("plain", app="plain-echo")
    assert len(pods) == 2 and not any(p["enrolled"] for p in pods), pods
    return pods


def restore_demo_policy(lab):
    lab.lab("apply", DEMO)


def echo_works(lab, netns, ip, port=9090):
    return echo_once(lab, netns, ip, port, "probe-%s" % uuid.uuid4().hex)["ok"]


def open_long_lived(lab, client, target_ip, port=9090, limit=30):
    p = lab.spawn_piped(client["netns"], "/usr/bin/python3", "-c", LONG_LIVED, target_ip,
                        str(port), str(limit))
    lines = Lines(p)
    first = lines.next_json(15)
    assert first and first["event"] == "open", \
        "the long-lived connection did not open: %s / %s" % (first, p.stderr.read()
                                                              if p.poll() is not None else "")
    return p, lines


def assert_closed_soon(lines, what, within=5.0):
    ev = lines.next_json(within + 3.5)     # +3.5: a stalled read reports after 3 s
    assert ev is not None and ev["event"] == "closed", \
        "%s: the open connection was not closed by ztunnel: %s" % (what, ev)


def test_deny_policy_closes_open_and_refuses_new(lab, client, remote_b):
    assert echo_works(lab, client["netns"], remote_b["ip"])
    p, lines = open_long_lived(lab, client, remote_b["ip"])
    try:
        lab.apply(DENY_CLIENT)
        assert_closed_soon(lines, "DENY applied")
        assert not echo_works(lab, client["netns"], remote_b["ip"]), \
            "a new connection from the denied client got through"
        log = lab.log("ztunnel-" + remote_b["node"])
        assert "deny-client" in log or "denied" in log.lower(), \
            "the destination ztunnel logged no denial"
    finally:
        lab.stop(p)
        lab.delete(DENY_CLIENT)
    wait_for(lambda: echo_works(lab, client["netns"], remote_b["ip"]), 10,
             what="connections to work again once the DENY is deleted")


def test_allow_policy_change_closes_open_and_refuses_new(lab, client, remote_b):
    assert echo_works(lab, client["netns"], remote_b["ip"])
    p, lines = open_long_lived(lab, client, remote_b["ip"])
    try:
        lab.apply(ALLOW_SOMEBODY_ELSE)
        assert_closed_soon(lines, "ALLOW no longer admitting the client")
        assert not echo_works(lab, client["netns"], remote_b["ip"]), \
            "a new connection got through although no ALLOW rule admits the client"
    finally:
        lab.stop(p)
        restore_demo_policy(lab)
    wait_for(lambda: echo_works(lab, client["netns"], remote_b["ip"]), 10,
             what="connections to work again once the client is allowed again")


def test_allow_policy_to_ports(lab, client, remote_b):
    """An ALLOW rule limited to port 8080 admits the client there and nowhere else; the open
    connection to 9090 is closed when the rule narrows."""
    p, lines = open_long_lived(lab, client, remote_b["ip"], 9090)
    try:
        lab.apply(ALLOW_CLIENT_ON_8080)
        assert_closed_soon(lines, "ALLOW narrowed to port 8080")
        assert not echo_works(lab, client["netns"], remote_b["ip"], 9090)
        res = lab.exec("demo/app=client", "echo-client", "http://%s:8080/ports" % remote_b["ip"],
                       timeout=30)
        assert "StatusCode=200" in res.stdout, res.stdout + res.stderr
    finally:
        lab.stop(p)
        restore_demo_policy(lab)
    wait_for(lambda: echo_works(lab, client["netns"], remote_b["ip"]), 10,
             what="port 9090 to work again")


def test_open_connection_survives_unrelated_policy_change(lab, client, remote_b):
    """Re-evaluation closes only what is now denied: a DENY for another principal leaves the
    client's open connection alone."""
    other = DENY_CLIENT.replace("deny-client", "deny-other").replace(
        "sa/client", "sa/somebody-else")
    p, lines = open_long_lived(lab, client, remote_b["ip"], limit=4)
    try:
        lab.apply(other)
        ev = lines.next_json(10)
        assert ev and ev["event"] == "survived", ev
    finally:
        lab.stop(p)
        lab.delete(other)


def test_plaintext_passthrough_to_pod_outside_mesh(lab, client, plain_pods, tmp_path):
    """An enrolled client reaches a non-enrolled pod on the other node in plain TCP (the
    capture on the underlay shows the payload), directly and through its Service VIP."""
    far = [p for p in plain_pods if p["node"] != client["node"]]
    assert far, "plain-echo should have a pod on the other node"
    secret = "gm-e2e-plain-%s" % uuid.uuid4().hex
    cap = Capture(lab, lab.underlay, "br0", tmp_path / "plain.pcap")
    try:
        res = echo_once(lab, client["netns"], far[0]["ip"], 9090, secret)
    finally:
        cap.stop()
    assert res["ok"], res
    assert secret.encode() in cap.data(), "the passthrough payload is not on the underlay"
    assert cap.packets("tcp port 9090 and host %s and host %s" % (client["ip"], far[0]["ip"]))
    assert not cap.packets("tcp port 15008 and host %s" % far[0]["ip"]), \
        "ztunnel tried HBONE towards a pod outside the mesh"
    vip = lab.vip("plain", "plain-echo")
    assert all(echo_works(lab, client["netns"], vip) for _ in range(4)), \
        "the VIP of a Service outside the mesh does not pass through"


def test_enrolled_pod_refuses_plaintext_under_allow_policy(lab, client, remote_b, plain_pods):
    """From a pod outside the mesh, an enrolled pod's app port is reached only through
    ztunnel's inbound plaintext path, where the demo's ALLOW-only-client policy refuses it
    (no identity); an enrolled pod without policy accepts it (so the path itself works)."""
    outsider = plain_pods[0]
    assert not echo_works(lab, outsider["netns"], remote_b["ip"]), \
        "plaintext from outside the mesh reached service-b despite its ALLOW policy"
    assert not echo_works(lab, outsider["netns"], lab.vip("demo", "service-b")), \
        "plaintext via the VIP reached service-b despite its ALLOW policy"
    assert echo_works(lab, outsider["netns"], client["ip"]), \
        "plaintext inbound to an enrolled pod without policy should be relayed"


def test_enrolled_client_sends_no_plaintext(lab, client, tmp_path):
    """Traffic from the enrolled client to an enrolled Service on the other node is HBONE only."""
    v2 = lab.pod("demo", app="service-b", version="v2")
    assert v2["node"] != client["node"], "the demo lab should put service-b-v2 on node2"
    secret = "gm-e2e-mesh-%s" % uuid.uuid4().hex
    cap = Capture(lab, lab.underlay, "br0", tmp_path / "mesh.pcap")
    try:
        res = lab.exec("demo/app=client", "echo-client", "http://service-b-v2.demo/" + secret,
                       "-H", "X-Secret:" + secret, timeout=30)
    finally:
        cap.stop()
    assert "StatusCode=200" in res.stdout and secret in res.stdout, res.stdout + res.stderr
    assert cap.packets("tcp port 15008 and host %s and host %s" % (client["ip"], v2["ip"]))
    assert not cap.packets("tcp port 8080 or tcp port 80"), "app ports on the underlay"
    assert secret.encode() not in cap.data(), "mesh payload crossed the underlay in plaintext"


def seen_ip(res):
    """The peer address the echo server reported, from echo-client's output."""
    ips = [l.split("IP=", 1)[1].strip() for l in res.stdout.splitlines() if "] IP=" in l]
    assert "StatusCode=200" in res.stdout and ips, res.stdout + res.stderr
    return ips[0]


def test_app_sees_the_client_address(lab, client, remote_b, plain_pods):
    """The application behind ztunnel sees the client's own address, not its pod's: over HBONE
    from another node, over HBONE on the same node, and on the inbound plaintext path."""
    res = lab.exec("demo/app=client", "echo-client", "http://%s:8080/src" % remote_b["ip"],
                   timeout=30)
    assert seen_ip(res) == client["ip"], "over HBONE from the other node"
    near = [p for p in lab.pods("demo", app="service-b") if p["node"] == client["node"]]
    for p in near:
        res = lab.exec("demo/app=client", "echo-client", "http://%s:8080/src" % p["ip"],
                       timeout=30)
        assert seen_ip(res) == client["ip"], "over HBONE on the same node"
    outsider = plain_pods[0]
    res = lab.exec("plain/" + outsider["name"], "echo-client",
                   "http://%s:8080/src" % client["ip"], timeout=30)
    assert seen_ip(res) == outsider["ip"], "on the inbound plaintext path"
    status, body = lab.http_get(remote_b["node"], 15000, "/config_dump")
    assert status == 200, status
    pods = {(p["namespace"], p["pod"]): p for p in json.loads(body)["pods"]}
    assert pods[("demo", remote_b["name"])]["source"] == "client", pods
    # The app's accepted sockets take the mark of ztunnel's SYN, so their replies are routed
    # once per connection rather than once per packet.
    res = lab.netns_run(remote_b["netns"], "sysctl", "-n", "net.ipv4.tcp_fwmark_accept",
                        check=True)
    assert res.stdout.strip() == "1", res.stdout


# One HTTP/1.1 GET from a fixed source port; prints the response's status line and IP= line.
GET_FROM_PORT = r"""
import json, socket, sys
host, port, sport = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", sport))
s.settimeout(10)
out = {"status": None, "ip": None}
try:
    s.connect((host, port))
    s.sendall(b"GET /port HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    data = b""
    while True:
        b = s.recv(65536)
        if not b:
            break
        data += b
    text = data.decode("latin-1")
    out["status"] = text.split("\r\n", 1)[0]
    out["ip"] = ([l[3:].strip() for l in text.split("\n") if l.startswith("IP=")] or [None])[0]
except OSError as e:
    out["error"] = str(e)
print(json.dumps(out))
"""


def test_app_connection_never_reuses_the_captured_4_tuple(lab, client, plain_pods):
    """On the inbound plaintext path the captured connection (client:P → app) is in the pod's
    conntrack; ztunnel's own connection from the client's address must not pick port P. The
    pod's port range is narrowed to P and P+1 so that P would be picked if it were allowed."""
    outsider, port = plain_pods[0], 40000
    rng = "net.ipv4.ip_local_port_range"
    old = lab.netns_run(client["netns"], "sysctl", "-n", rng, check=True).stdout.split()
    try:
        lab.netns_run(client["netns"], "sysctl", "-qw", "%s=%d %d" % (rng, port, port + 1),
                      check=True)
        for _ in range(3):
            res = lab.py_json(outsider["netns"], GET_FROM_PORT, client["ip"], "8080", str(port))
            assert res["status"] == "HTTP/1.1 200 OK" and res["ip"] == outsider["ip"], res
    finally:
        lab.netns_run(client["netns"], "sysctl", "-qw", "%s=%s %s" % (rng, old[0], old[1]))


# A TCP echo on [ADDR]:PORT that serves connections until killed; prints "listening".
V6_ECHO = r"""
import socket, sys, threading
s = socket.socket(socket.AF_INET6)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(16)
print("listening", flush=True)
def serve(c):
    with c:
        while True:
            b = c.recv(65536)
            if not b:
                return
            c.sendall(b)
while True:
    threading.Thread(target=serve, args=(s.accept()[0],), daemon=True).start()
"""


def give_ipv6(lab, pod, k):
    """An IPv6 link between a pod and its node (2001:2:0:K::/64, RFC 5180's benchmarking
    prefix, on the pod's veth pair, inside the lab's namespaces): (pod address, node address,
    the node side's veth)."""
    link = lab.netns_run(pod["netns"], "ip", "-o", "link", "show", "eth0", check=True).stdout
    peer_index = int(link.split("@if", 1)[1].split(":", 1)[0])
    node = lab.node_netns(pod["node"])
    node_links = lab.netns_run(node, "ip", "-o", "link", "show", check=True).stdout
    veth = [l.split(": ")[1].split("@")[0] for l in node_links.splitlines()
            if int(l.split(":", 1)[0]) == peer_index][0]
    pod_ip, node_ip = "2001:2:0:%d::10" % k, "2001:2:0:%d::1" % k
    lab.netns_run(pod["netns"], "ip", "-6", "addr", "add", pod_ip + "/64", "dev", "eth0", "nodad",
                  check=True)
    lab.netns_run(node, "ip", "-6", "addr", "add", node_ip + "/64", "dev", veth, "nodad",
                  check=True)
    return pod_ip, node_ip, veth


def test_ipv6_tcp_of_enrolled_pods_is_refused(lab, client, plain_pods):
    """IPv6 is not captured, so an enrolled pod's IPv6 TCP is reset both ways (no plaintext
    side door; dual-stack clients fall back to IPv4 at once). The same links work for a pod
    outside the mesh, which shows that the refusal is ztunnel's. (With GM_IPV6=passthrough
    the enrolled pod's checks fail: both connections echo.)"""
    status, body = lab.http_get(client["node"], 15000, "/config_dump")
    assert status == 200 and json.loads(body)["ipv6"] == "refused", body[:300]
    outsider = [p for p in plain_pods if p["node"] == client["node"]][0]
    node = lab.node_netns(client["node"])
    added = []
    try:
        for k, pod in ((1, client), (2, outsider)):
            pod_ip, node_ip, veth = give_ipv6(lab, pod, k)
            added.append((pod, pod_ip, node_ip, veth))
            p = lab.spawn_piped(node, "/usr/bin/python3", "-c", V6_ECHO, node_ip, "9099")
            assert Lines(p).next(10) == "listening"
            out = echo_once(lab, pod["netns"], node_ip, 9099, "v6-out-%d" % k)
            inn = echo_once(lab, node, pod_ip, 9090, "v6-in-%d" % k)
            if pod is client:
                for what, r in (("outbound", out), ("inbound", inn)):
                    assert not r["ok"] and "ConnectionRefused" in (r["error"] or ""), (what, r)
            else:
                assert out["ok"] and inn["ok"], (out, inn)
            lab.stop(p)
    finally:
        for pod, pod_ip, node_ip, veth in added:
            lab.netns_run(pod["netns"], "ip", "-6", "addr", "del", pod_ip + "/64", "dev", "eth0")
            lab.netns_run(node, "ip", "-6", "addr", "del", node_ip + "/64", "dev", veth)


def pod_capture_state(lab, pod):
    """How many capture tables, reply tables and reply rules a pod's namespace holds."""
    tables = lab.nft_tables(pod["netns"])
    rules = lab.netns_run(pod["netns"], "ip", "rule", "list", check=True).stdout
    return {"capture": tables.count("table ip gammamesh"),
            "ipv6_refusal": tables.count("table ip6 gammamesh"),
            "reply": tables.count("table ip gammamesh_reply"),
            "rule": sum(1 for l in rules.splitlines() if l.startswith("1337:"))}


def test_crash_fails_closed_and_restart_recovers(lab, client, remote_b, tmp_path):
    """SIGKILL the server node's ztunnel (a crash, an OOM kill): its open connections end at
    once instead of hanging, the pod stays unreachable while no ztunnel runs (its rules stay,
    so nothing reaches it in plaintext), and a new ztunnel started with the same command line
    takes the pod back without piling up rules. The new one runs with GM_IPV6=passthrough: the
    pod's IPv6 refusal table goes, and the setting shows in /config_dump and a warning. Runs
    last in this module: the new ztunnel is the test's own process from here on."""
    old = lab.daemon("ztunnel-" + remote_b["node"])
    assert old["alive"], old
    assert pod_capture_state(lab, remote_b) == {"capture": 1, "ipv6_refusal": 1, "reply": 1,
                                                "rule": 1}
    p, lines = open_long_lived(lab, client, remote_b["ip"], limit=60)
    try:
        os.kill(old["pid"], signal.SIGKILL)
        assert_closed_soon(lines, "server node's ztunnel killed")
    finally:
        lab.stop(p)

    # no ztunnel on that node: refused quickly, never answered by the app in plaintext
    for i in range(3):
        res = echo_once(lab, client["netns"], remote_b["ip"], 9090, "while-down-%d" % i)
        assert not res["ok"] and res["received"] == "", res
    outsider = lab.pods("plain", app="plain-echo")[0]
    res = echo_once(lab, outsider["netns"], remote_b["ip"], 9090, "plaintext-while-down")
    assert not res["ok"] and res["received"] == "", res
    assert pod_capture_state(lab, remote_b) == {"capture": 1, "ipv6_refusal": 1, "reply": 1,
                                                "rule": 1}

    # the same command line; GM_IPV6=passthrough also checks that a changed setting is applied
    # to a pod captured before (its IPv6 refusal table goes)
    lab.spawn(lab.node_netns(remote_b["node"]), *old["argv"], log=tmp_path / "ztunnel.log",
              env=dict(lab.env, GM_IPV6="passthrough"))
    wait_for(lambda: lab.http_get(remote_b["node"], 15021, "/healthz/ready", timeout=2)[0] == 200,
             15, what="the restarted ztunnel to be ready")
    wait_for(lambda: echo_works(lab, client["netns"], remote_b["ip"]), 10,
             what="the pod to be reachable through the restarted ztunnel")
    res = lab.exec("demo/app=client", "echo-client", "http://%s:8080/after-restart" % remote_b["ip"],
                   timeout=30)
    assert "StatusCode=200" in res.stdout and "IP=%s" % client["ip"] in res.stdout, res.stdout
    assert pod_capture_state(lab, remote_b) == {"capture": 1, "ipv6_refusal": 0, "reply": 1,
                                                "rule": 1}
    status, body = lab.http_get(remote_b["node"], 15000, "/config_dump")
    assert status == 200 and json.loads(body)["ipv6"] == "passthrough", body[:300]
    log = (tmp_path / "ztunnel.log").read_text()
    assert "pod captured" in log and remote_b["name"] in log, log[-2000:]
    assert "IPv6 TCP passes outside the mesh" in log, log[-2000:]
