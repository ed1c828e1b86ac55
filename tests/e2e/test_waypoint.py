"""The waypoint on the lab: an enrolled namespace that asks for a waypoint, echo backends on two
nodes, HTTPRoutes on a Service, and a client pod whose ztunnel hands the traffic to the waypoint
(HBONE, :authority = the Service VIP:port). Proves what the conformance suite does not:

- routes apply through the waypoint (weights, header modifiers, the exact redirect Location,
  the rewritten path the backend saw), per request on a reused connection;
- a slow backend gets 504 within the request timeout; retries succeed after failures, with the
  backoff respected, and a POST body is replayed intact; requests without a retry stanza are
  not retried; mirroring reaches the mirror backend without delaying the response;
- HTTP/2 inside the tunnel (echo-client --h2), to HTTP/1.1 and to h2c backends;
- hostile input (smuggling shapes, both llhttp CVE classes, oversized heads, slow headers) gets
  4xx or a closed connection while a parallel well-behaved client is unaffected;
- a waypoint restart (a second one on the same SO_REUSEPORT port, SIGTERM to the first) fails
  no request;
- istio_requests_total / istio_request_duration_milliseconds with reporter="waypoint", and one
  access-log line per request;
- an Upgrade (WebSocket-style) connection switches protocols through the waypoint and carries
  bytes both ways, ends included.

    sudo GM_E2E_REQUIRED=1 /usr/bin/python3 -m pytest -v tests/e2e/test_waypoint.py
"""
import hashlib
import json
import os
import random
import re
import threading
import time

import pytest

from conftest import BUILD, PYTHON, kill_group, make_lab, metric_sum, wait_for

NS = "wpt"
CLIENT_ID = "spiffe://cluster.local/ns/%s/sa/client" % NS
ECHO_IMAGE = "registry.k8s.io/gateway-api/conformance/echo-advanced:v0.1.0"


def deployment(name, labels, replicas=1, sa="echo"):
    return """
apiVersion: apps/v1
kind: Deployment
metadata: {name: %(name)s, namespace: %(ns)s}
spec:
  replicas: %(replicas)d
  selector: {matchLabels: %(labels)s}
  template:
    metadata: {labels: %(labels)s}
    spec:
      serviceAccountName: %(sa)s
      containers:
      - name: echo
        image: %(image)s
        args: ["--port=8080"]
        ports: [{name: http, containerPort: 8080}]
""" % {"name": name, "ns": NS, "labels": labels, "replicas": replicas, "sa": sa,
       "image": ECHO_IMAGE}


def service(name, selector, app_protocol=None):
    proto = ", appProtocol: %s" % app_protocol if app_protocol else ""
    return """
apiVersion: v1
kind: Service
metadata: {name: %s, namespace: %s}
spec:
  selector: %s
  ports: [{name: http, port: 80, targetPort: 8080%s}]
""" % (name, NS, selector, proto)


MANIFEST = "---".join([
    """
apiVersion: v1
kind: Namespace
metadata:
  name: %(ns)s
  labels:
    gammamesh.io/dataplane-mode: ambient
    gammamesh.io/use-waypoint: waypoint
""" % {"ns": NS},
    """
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: waypoint, namespace: %s}
spec:
  gatewayClassName: gammamesh-waypoint
  listeners: [{name: mesh, port: 15008, protocol: HBONE}]
""" % NS,
    deployment("client", "{app: client}", sa="client"),
    deployment("echo-v1", "{app: echo, version: v1}", replicas=2),
    deployment("echo-v2", "{app: echo, version: v2}"),
    deployment("mirror", "{app: mirror}"),
    service("echo", "{app: echo}"),
    service("echo-v1", "{app: echo, version: v1}"),
    service("echo-v2", "{app: echo, version: v2}"),
    service("mirror", "{app: mirror}"),
    service("web", "{app: nothing}"),
    service("ws", "{app: mirror}").replace("targetPort: 8080", "targetPort: 8090"),
    service("grpc", "{app: echo, version: v1}", "kubernetes.io/h2c"),
    """
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web-routes, namespace: %s}
spec:
  parentRefs: [{group: "", kind: Service, name: web, port: 80}]
  rules:
  - name: split
    matches: [{path: {type: PathPrefix, value: /split}}]
    backendRefs: [{name: echo-v1, port: 80, weight: 90}, {name: echo-v2, port: 80, weight: 10}]
  - name: headers
    matches: [{path: {type: PathPrefix, value: /hdr}}]
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier:
        set: [{name: X-Set, value: set-value}]
        add: [{name: X-Add, value: added}]
        remove: [X-Remove]
    - type: ResponseHeaderModifier
      responseHeaderModifier:
        add: [{name: X-Resp, value: resp-value}]
    backendRefs: [{name: echo-v1, port: 80}]
  - name: redirect
    matches: [{path: {type: PathPrefix, value: /redirect}}]
    filters:
    - type: RequestRedirect
      requestRedirect:
        hostname: example.com
        statusCode: 301
        path: {type: ReplacePrefixMatch, replacePrefixMatch: /new}
  - name: rewrite
    matches: [{path: {type: PathPrefix, value: /rewrite}}]
    filters:
    - type: URLRewrite
      urlRewrite:
        hostname: rewritten.example
        path: {type: ReplacePrefixMatch, replacePrefixMatch: /rewritten}
    backendRefs: [{name: echo-v1, port: 80}]
  - name: slow
    matches: [{path: {type: PathPrefix, value: /slow}}]
    timeouts: {request: 1s}
    backendRefs: [{name: echo-v1, port: 80}]
  - name: retry
    matches: [{path: {type: PathPrefix, value: /retry}}]
    timeouts: {request: 10s}
    retry: {attempts: 3, codes: [503], backoff: 200ms}
    backendRefs: [{name: echo-v2, port: 80}]  # one replica: ?fail_first= counts per pod
  - name: noretry
    matches: [{path: {type: PathPrefix, value: /noretry}}]
    backendRefs: [{name: echo-v2, port: 80}]
  - name: mirror
    matches: [{path: {type: PathPrefix, value: /mirror}}]
    filters:
    - type: RequestMirror
      requestMirror: {backendRef: {name: mirror, port: 80}}
    backendRefs: [{name: echo-v2, port: 80}]
""" % NS])

# Run inside the client pod: send raw bytes on one connection to host:port and report what came
# back and whether the server closed.
RAW = r"""
import json, socket, sys, time
host, port, wait = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
data = bytes.fromhex(sys.stdin.read().strip())
s = socket.create_connection((host, port), timeout=wait)
s.sendall(data)
out, closed, end = b"", False, time.time() + wait
while time.time() < end:
    try:
        b = s.recv(65536)
    except socket.timeout:
        break
    except ConnectionResetError:
        closed = True
        break
    if not b:
        closed = True
        break
    out += b
print(json.dumps({"out": out.decode("latin-1"), "closed": closed}))
"""

# Run inside the client pod: send a partial head and wait for the answer (slow headers).
SLOW = r"""
import json, socket, sys, time
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=30)
s.sendall(b"GET / HTTP/1.1\r\nHost: a\r\nX-Slow: ")
t0 = time.time()
first = s.recv(4096)
rest = s.recv(4096)
print(json.dumps({"first": first.decode("latin-1"), "eof": rest == b"",
                  "after": time.time() - t0}))
"""


class Result:
    def __init__(self, out, elapsed):
        self.out, self.elapsed, self.items = out, elapsed, {}
        for line in out.splitlines():
            m = re.match(r"\[(\d+)( body)?\] (.*)", line)
            if m:
                self.items.setdefault(int(m.group(1)), []).append((bool(m.group(2)),
                                                                   m.group(3)))

    def status(self, i=0):
        for body, text in self.items.get(i, []):
            if not body and text.startswith("StatusCode="):
                return int(text.split("=", 1)[1])
        return None

    def statuses(self):
        return [self.status(i) for i in sorted(self.items)]

    def field(self, key, i=0):
        for body, text in self.items.get(i, []):
            if body and text.startswith(key + "="):
                return text.split("=", 1)[1]
        return None

    def header(self, name, i=0):
        for body, text in self.items.get(i, []):
            if not body and text.startswith("ResponseHeader=%s:" % name):
                return text.split(":", 1)[1]
        return None

    def request_header(self, name, i=0):
        return [t.split(":", 1)[1] for b, t in self.items.get(i, [])
                if b and t.startswith("RequestHeader=%s:" % name)]


@pytest.fixture(scope="module")
def lab(request, tmp_path_factory):
    lab = make_lab(request, tmp_path_factory, "wp")
    lab.up(lab.manifest(MANIFEST), nodes=2)
    # the waypoint answers through the mesh before the tests start
    wait_for(lambda: client(lab, "echo", "/", timeout=3).status() == 200, 30,
             what="a request through the waypoint")
    return lab


def client(lab, svc, path, *args, timeout=10, ns=NS):
    t0 = time.time()
    res = lab.exec("%s/app=client" % NS, "echo-client", "http://%s.%s%s" % (svc, ns, path),
                   "--timeout", str(timeout), *args, timeout=timeout * 3 + 60)
    return Result(res.stdout, time.time() - t0)


def client_netns(lab):
    return lab.pod(NS, app="client")["netns"]


def waypoint_pod(lab):
    return lab.pod(NS, **{"gateway.networking.k8s.io/gateway-name": "waypoint"})


def raw(lab, svc, data, wait=4.0):
    """Raw bytes (on stdin: they may not fit an argument) to a Service from the client pod."""
    res = lab.netns_run(client_netns(lab), PYTHON, "-c", RAW, lab.vip(NS, svc), "80", str(wait),
                        input=data.hex(), timeout=wait + 30, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


# ---- routes through the waypoint ----

def test_split_per_request_on_one_connection(lab):
    n = 500  # as the conformance harness: ±5 points is 3.7 standard deviations at n=500
    r = client(lab, "web", "/split", "--count", str(n))
    assert r.statuses() == [200] * n
    v1 = sum(1 for i in range(n) if r.field("ServiceVersion", i) == "v1")
    assert 0.85 * n <= v1 <= 0.95 * n, v1  # 90/10 ± 5 points
    hosts = {r.field("Hostname", i) for i in range(n)}
    assert len([h for h in hosts if h.startswith("echo-v1-")]) == 2  # both v1 pods


def test_passthrough_without_routes(lab):
    r = client(lab, "echo", "/plain", "--count", "30")
    assert r.statuses() == [200] * 30
    assert {r.field("ServiceVersion", i) for i in range(30)} == {"v1", "v2"}


def test_header_modifiers(lab):
    r = client(lab, "web", "/hdr", "-H", "X-Remove:gone", "-H", "X-Add:original")
    assert r.status() == 200
    assert r.request_header("X-Set") == ["set-value"]
    assert sorted(r.request_header("X-Add")) == ["added", "original"]
    assert r.request_header("X-Remove") == []
    assert r.header("X-Resp") == "resp-value"
    assert r.request_header("X-Forwarded-For") == [lab.pod(NS, app="client")["ip"]]
    assert re.match(r"^[0-9a-f-]{36}$", r.request_header("X-Request-Id")[0])


def test_redirect_location(lab):
    r = client(lab, "web", "/redirect/a/b?q=1")
    assert r.status() == 301
    assert r.header("Location") == "http://example.com/new/a/b?q=1"


def test_rewrite_seen_by_backend(lab):
    r = client(lab, "web", "/rewrite/x?y=1")
    assert r.status() == 200
    assert r.field("URL") == "/rewritten/x?y=1"
    assert r.field("Host") == "rewritten.example"


def test_no_match_404(lab):
    assert client(lab, "web", "/nothing").status() == 404


# ---- timeouts, retries, mirrors ----

def test_slow_backend_504_in_time(lab):
    r = client(lab, "web", "/slow?delay=2s")
    assert r.status() == 504
    assert r.elapsed < 1.9 + 1.0, r.elapsed  # 1 s timeout + the exec overhead


def test_retries_with_backoff(lab):
    key = "k%d" % random.randint(0, 1 << 30)
    t0 = time.time()
    r = client(lab, "web", "/retry?fail_first=2&key=" + key)
    assert r.status() == 200, r.out
    assert time.time() - t0 >= 0.4  # two retries after at least 200 ms each


def test_retry_replays_post_body(lab):
    key = "p%d" % random.randint(0, 1 << 30)
    body = "payload-%d-" % random.randint(0, 1 << 30) + "z" * 20000
    r = client(lab, "web", "/retry?fail_first=2&key=" + key, "--method", "POST", "--body", body)
    assert r.status() == 200, r.out
    assert r.field("BodySha256") == hashlib.sha256(body.encode()).hexdigest()


def test_no_retry_without_stanza(lab):
    key = "n%d" % random.randint(0, 1 << 30)
    assert client(lab, "web", "/noretry?fail_first=1&key=" + key).status() == 503


def test_mirror(lab):
    key = "m%d" % random.randint(0, 1 << 30)
    # the primary (echo-v2) answers 200; the mirror backend's first request for the key fails
    r = client(lab, "web", "/mirror?fail_first=0&key=" + key)
    assert r.status() == 200 and r.field("ServiceVersion") == "v2"
    # the mirror received the copy: its counter for the key moved
    mirror_ip = lab.pod(NS, app="mirror")["ip"]

    def mirrored():
        res = lab.exec("%s/app=client" % NS, "echo-client",
                       "http://%s:8080/mirror?fail_first=1&key=%s" % (mirror_ip, key))
        return "StatusCode=200" in res.stdout
    assert mirrored()


def test_mirror_does_not_delay(lab):
    r = client(lab, "web", "/mirror", "--count", "20")
    assert r.statuses() == [200] * 20
    plain = client(lab, "web", "/hdr", "--count", "20")
    assert r.elapsed < plain.elapsed + 2.0


# ---- protocols ----

def test_h2_inner(lab):
    r = client(lab, "web", "/split", "--h2", "--count", "50")
    assert r.statuses() == [200] * 50
    r = client(lab, "web", "/redirect/z", "--h2")
    assert r.status() == 301 and r.header("Location") == "http://example.com/new/z"
    body = "h" * 100000
    r = client(lab, "echo", "/post", "--h2", "--method", "POST", "--body", body)
    assert r.field("BodySha256") == hashlib.sha256(body.encode()).hexdigest()


def test_h2c_backend(lab):
    r = client(lab, "grpc", "/up")
    assert r.status() == 200 and r.field("Proto") == "HTTP/2.0"


# ---- hostile input ----

HOSTILE = [
    ("cl-and-te", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n"
     b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    ("differing-cl", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nContent-Length: 5\r\n"
     b"\r\nabcde", 400),
    ("bare-lf", b"GET / HTTP/1.1\nHost: a\n\n", 400),
    ("bare-cr", b"GET / HTTP/1.1\r\nHost: a\rX: y\r\n\r\n", 400),
    ("space-before-name", b"POST / HTTP/1.1\r\nHost: a\r\n Content-Length: 3\r\n\r\nabc", 400),
    ("space-before-colon", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length : 3\r\n\r\nabc", 400),
    ("te-gzip", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
    ("oversized-head", b"GET / HTTP/1.1\r\nHost: a\r\nX: " + b"a" * 70000 + b"\r\n\r\n", 431),
    ("too-many-headers", b"GET / HTTP/1.1\r\nHost: a\r\n" +
     b"".join(b"X-%d: v\r\n" % i for i in range(150)) + b"\r\n", 431),
]


@pytest.mark.parametrize("name,data,status", HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_refused(lab, name, data, status):
    res = raw(lab, "echo", data)
    assert res["out"].startswith("HTTP/1.1 %d" % status), res["out"][:200]
    assert res["closed"]


def test_smuggled_request_not_forwarded(lab):
    data = (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n"
            b"\r\n5c\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n0\r\n\r\n")
    res = raw(lab, "echo", data)
    assert "URL=/smuggled" not in res["out"] and res["closed"]


def test_slow_headers_408_while_others_served(lab):
    result = {}

    def slowloris():
        result.update(lab.py_json(client_netns(lab), SLOW, lab.vip(NS, "echo"), "80",
                                  timeout=60))

    t = threading.Thread(target=slowloris)
    t.start()
    r = client(lab, "echo", "/", "--count", "20")
    t.join()
    assert r.statuses() == [200] * 20
    assert result["first"].startswith("HTTP/1.1 408"), result
    assert result["eof"] and 9 <= result["after"] <= 13, result  # head-timeout 10 s


def test_hostile_does_not_hurt_parallel_clients(lab):
    stop = time.time() + 4
    errors = []

    def attack():
        while time.time() < stop:
            try:
                raw(lab, "echo", HOSTILE[0][1], wait=1)
            except Exception as e:  # noqa: BLE001 - any failure of the attacker is fine
                errors.append(e)

    threads = [threading.Thread(target=attack) for _ in range(2)]
    for t in threads:
        t.start()
    r = client(lab, "echo", "/", "--count", "100")
    for t in threads:
        t.join()
    assert r.statuses() == [200] * 100


# ---- observability ----

def test_metrics_and_access_log(lab):
    r = client(lab, "web", "/hdr", "-H", "X-Request-Id:e2e-log-id")
    assert r.status() == 200
    wp = waypoint_pod(lab)
    samples = lab.metrics_in(wp["netns"]) if hasattr(lab, "metrics_in") else None
    if samples is None:
        from conftest import parse_metrics
        res = lab.netns_run(wp["netns"], "curl", "-s", "http://127.0.0.1:15020/metrics")
        samples = parse_metrics(res.stdout)
    ok = metric_sum(samples, "istio_requests_total", reporter="waypoint",
                    destination_service_name="echo-v1", destination_service_namespace=NS,
                    source_principal=CLIENT_ID, response_code="200",
                    connection_security_policy="mutual_tls", request_protocol="http")
    assert ok >= 1
    assert metric_sum(samples, "istio_requests_total", reporter="waypoint",
                      response_code="404", response_flags="NR") >= 1
    assert metric_sum(samples, "istio_request_duration_milliseconds_count",
                      reporter="waypoint") >= ok
    log = open(wp["processes"][0]["log"]).read()
    lines = [ln for ln in log.splitlines() if "sub=access" in ln and "e2e-log-id" in ln]
    assert lines, log[-2000:]
    for part in ("method=GET", "status=200", "route=%s/web-routes" % NS, "rule=1",
                 "rule_name=headers", "retries=0", "src.workload=client-",
                 "dst.workload=echo-v1-"):
        assert part in lines[-1], (part, lines[-1])


# ---- upgrade (WebSocket) ----

UPGRADE_PEER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "upgrade_peer.py")


def test_upgrade_through_the_waypoint(lab):
    backend = lab.pod(NS, app="mirror")
    server = lab.spawn(backend["netns"], PYTHON, UPGRADE_PEER, "server", "0.0.0.0", "8090",
                       log=str(lab.workdir / "ws-server.log"))
    try:
        wait_for(lambda: lab.netns_run(backend["netns"], "ss", "-Hltn", "sport = :8090")
                 .stdout.strip() != "", 15, what="the upgrade server listening")
        res = lab.netns_run(client_netns(lab), PYTHON, UPGRADE_PEER, "client", lab.vip(NS, "ws"),
                            "80", str(1 << 20), timeout=90, check=True)
        out = json.loads(res.stdout.strip().splitlines()[-1])
        head = out["head"].lower()
        assert head.startswith("http/1.1 101"), out["head"]
        assert "\r\nupgrade: websocket" in head and "\r\nconnection: upgrade" in head
        assert out["got"] == out["want"] and out["n"] == (1 << 20) + 3, out
    finally:
        lab.stop(server)
    log = open(waypoint_pod(lab)["processes"][0]["log"]).read()
    lines = [ln for ln in log.splitlines() if "sub=access" in ln and "path=/ws " in ln]
    assert lines and "status=101" in lines[-1] and "bytes_in=1048576" in lines[-1] and \
        "bytes_out=1048579" in lines[-1] and "src.workload=client-" in lines[-1], lines[-1:]


# ---- restart ----

def test_restart_without_failed_requests(lab):
    """A second waypoint joins on the same port (SO_REUSEPORT); the first gets SIGTERM and
    drains. A client sending requests all along sees no failure."""
    wp = waypoint_pod(lab)
    proc = wp["processes"][0]
    argv = proc["argv"] + ["--admin-addr", "127.0.0.1:25000", "--metrics-addr",
                           "127.0.0.1:25020", "--ready-addr", "127.0.0.1:25021"]
    log = str(lab.workdir / "waypoint-2.log")
    second = lab.spawn(wp["netns"], *argv, log=log)
    wait_for(lambda: lab.netns_run(wp["netns"], "curl", "-s", "-o", "/dev/null", "-w",
                                   "%{http_code}", "http://127.0.0.1:25021/healthz/ready")
             .stdout == "200", 15, what="the second waypoint ready")
    out = {}

    def load():
        res = lab.exec("%s/app=client" % NS, "sh", "-c",
                       "for i in $(seq 1 15); do echo-client http://web.%s/split --count 20 "
                       "--timeout 5; sleep 0.1; done" % NS, timeout=120)
        out["r"] = Result(res.stdout, 0)

    t = threading.Thread(target=load)
    t.start()
    time.sleep(1.0)
    import signal
    os.kill(proc["pid"], signal.SIGTERM)
    t.join()
    wait_for(lambda: not lab.pod(NS, **{"gateway.networking.k8s.io/gateway-name":
                                        "waypoint"})["processes"][0]["alive"], 40,
             what="the first waypoint to exit")
    statuses = [ln for ln in out["r"].out.splitlines() if "StatusCode=" in ln or "error=" in ln]
    assert len(statuses) == 300, out["r"].out[-2000:]
    assert all("StatusCode=200" in ln for ln in statuses), [s for s in statuses
                                                             if "200" not in s][:5]
    # new requests are served by the second one
    assert client(lab, "web", "/split", "--count", "5").statuses() == [200] * 5
    kill_group(second, grace=10)
    for path in (proc["log"], log):
        text = open(path).read()
        assert "drained" in text, path
        # a sanitizer build (GM_BUILD_DIR=build-asan) reports here, at exit
        for bad in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"):
            assert bad not in text, (path, text[text.index(bad) - 200:][:3000])
