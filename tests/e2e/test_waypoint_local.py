"""The waypoint's data path on loopback, without root: test_wp_harness plays the client-side
ztunnel (plain TCP in, HBONE to the waypoint with :authority = a Service VIP:port) and the
destination ztunnels (HBONE in, TCP to the echo servers); echo-server plays the backends. Every
address is in a random 127.x.y.0/24 so parallel runs do not collide.

    /usr/bin/python3 -m pytest -v tests/e2e/test_waypoint_local.py      (GM_BUILD_DIR=build)
"""
import hashlib
import json
import os
import random
import re
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.path.abspath(os.environ.get("GM_BUILD_DIR") or os.path.join(ROOT, "build"))
WAYPOINT = os.path.join(BUILD, "waypoint", "waypoint")
HARNESS = os.path.join(BUILD, "tests", "unit", "test_wp_harness")
ECHO_SERVER = os.path.join(BUILD, "tests", "echo", "echo-server")
ECHO_CLIENT = os.path.join(BUILD, "tests", "echo", "echo-client")
TD = "cluster.local"
WAYPOINT_ID = "spiffe://%s/ns/test/sa/waypoint" % TD
CLIENT_ID = "spiffe://%s/ns/client/sa/default" % TD
BACKEND_ID = "spiffe://%s/ns/test/sa/echo" % TD
HEAD_TIMEOUT_S = 1
IDLE_TIMEOUT_S = 3

SERVICES = """
apiVersion: v1
kind: Service
metadata: {name: %(name)s, namespace: test}
spec:
  clusterIP: %(vip)s
  selector: %(selector)s
  ports: [{name: http, port: 80, targetPort: 8080%(proto)s}]
"""

POD = """
apiVersion: v1
kind: Pod
metadata: {name: %(name)s, namespace: test, labels: %(labels)s}
spec: {nodeName: n1, serviceAccountName: echo, containers: [{name: e, image: echo}]}
status: {podIP: %(ip)s, conditions: [{type: Ready, status: "True"}]}
"""

ROUTES = """
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web-routes, namespace: test}
spec:
  parentRefs: [{group: "", kind: Service, name: web, port: 80}]
  rules:
  - name: split
    matches: [{path: {type: PathPrefix, value: /split}}]
    backendRefs: [{name: echo-v1, port: 80, weight: 80}, {name: echo-v2, port: 80, weight: 20}]
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
    timeouts: {request: 500ms}
    backendRefs: [{name: echo-v1, port: 80}]
  - name: retry
    matches: [{path: {type: PathPrefix, value: /retry}}]
    timeouts: {request: 10s}
    retry: {attempts: 3, codes: [503], backoff: 200ms}
    backendRefs: [{name: echo-v1, port: 80}]
  - name: noretry
    matches: [{path: {type: PathPrefix, value: /noretry}}]
    backendRefs: [{name: echo-v1, port: 80}]
  - name: backend-timeout
    matches: [{path: {type: PathPrefix, value: /attempt-timeout}}]
    timeouts: {request: 5s, backendRequest: 300ms}
    retry: {attempts: 2, codes: [504], backoff: 100ms}
    backendRefs: [{name: echo-v1, port: 80}]
  - name: mirror
    matches: [{path: {type: PathPrefix, value: /mirror}}]
    filters:
    - type: RequestMirror
      requestMirror: {backendRef: {name: mirror, port: 80}}
    backendRefs: [{name: echo-v1, port: 80}]
  - name: bad
    matches: [{path: {type: PathPrefix, value: /bad}}]
    backendRefs: [{name: no-such-service, port: 80}]
  - name: empty
    matches: [{path: {type: PathPrefix, value: /empty}}]
"""


# A Service this waypoint serves as the waypoint of its namespace (a Gateway of the waypoint
# class, and the Service's use-waypoint label), for AuthorizationPolicies that target either.
GUARDED = """
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: waypoint, namespace: test}
spec: {gatewayClassName: gammamesh-waypoint, listeners: [{name: mesh, port: 15008, protocol: HBONE}]}
---
apiVersion: v1
kind: Service
metadata: {name: guarded, namespace: test, labels: {gammamesh.io/use-waypoint: waypoint}}
spec:
  clusterIP: 10.96.0.40
  selector: {app: echo, version: v1}
  ports: [{name: http, port: 80, targetPort: 8080}]
"""

POLICIES = """
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: guarded-reads, namespace: test}
spec:
  targetRefs: [{kind: Service, name: guarded}]
  action: ALLOW
  rules:
  - from: [{source: {principals: ["cluster.local/ns/client/sa/default"]}}]
    to: [{operation: {methods: [GET], paths: ["/ok/*"]}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: no-evil, namespace: test}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: waypoint}]
  action: DENY
  rules:
  - when: [{key: "request.headers[x-evil]", values: ["1"]}]
"""


UPGRADE_PORT = 8090
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from upgrade_peer import recv_all as read_to_end, recv_head  # noqa: E402
UPGRADE_PEER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "upgrade_peer.py")


class Env:
    def __init__(self, tmp):
        self.tmp = tmp
        self.net = "127.%d.%d" % (random.randint(40, 250), random.randint(1, 250))
        self.procs = []
        self.base = random.randint(20000, 50000)
        self.ports = {"echo": self.base, "web": self.base + 1, "h2svc": self.base + 2,
                      "nowhere": self.base + 3, "guarded": self.base + 4, "ws": self.base + 9}
        self.wp_port = self.base + 8
        self.admin, self.metrics, self.ready = self.base + 5, self.base + 6, self.base + 7
        assert len(set(self.ports.values()) | {self.admin, self.metrics, self.ready,
                                               self.wp_port}) == 10
        self.upgrade_server = None   # upgrade_peer.py server: the backend of Service ws

    def ip(self, n):
        return "%s.%d" % (self.net, n)

    def start(self, args, name, env=None):
        log = open(os.path.join(self.tmp, name + ".log"), "w")
        p = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=self.tmp,
                             env=dict(os.environ, **(env or {})))
        self.procs.append(p)
        return p

    def log(self, name):
        with open(os.path.join(self.tmp, name + ".log")) as fh:
            return fh.read()

    def config(self):
        objs = []
        for name, vip, sel, proto in [
                ("echo", "10.96.0.10", "{app: echo}", ""),
                ("echo-v1", "10.96.0.11", "{app: echo, version: v1}", ""),
                ("echo-v2", "10.96.0.12", "{app: echo, version: v2}", ""),
                ("mirror", "10.96.0.13", "{app: mirror}", ""),
                ("web", "10.96.0.20", "{app: nothing}", ""),
                ("h2svc", "10.96.0.30", "{app: echo, version: v1}",
                 ", appProtocol: kubernetes.io/h2c")]:
            objs.append(SERVICES % {"name": name, "vip": vip, "selector": sel, "proto": proto})
        objs.append((SERVICES % {"name": "ws", "vip": "10.96.0.50", "selector": "{app: echo, version: v1}",
                                 "proto": ""}).replace("targetPort: 8080", "targetPort: %d" % UPGRADE_PORT))
        for name, n, labels in [("echo-v1", 2, "{app: echo, version: v1}"),
                                ("echo-v2", 3, "{app: echo, version: v2}"),
                                ("mirror-1", 4, "{app: mirror}")]:
            objs.append(POD % {"name": name, "ip": self.ip(n), "labels": labels})
        objs.append(ROUTES)
        objs.append(GUARDED)
        os.makedirs(os.path.join(self.tmp, "cfg"))
        with open(os.path.join(self.tmp, "cfg", "objects.yaml"), "w") as fh:
            fh.write("---".join(objs))

    def up(self):
        subprocess.run([HARNESS, "ca", self.tmp], check=True)
        self.config()
        self.upgrade_server = self.start([sys.executable, UPGRADE_PEER, "server", self.ip(2),
                                          str(UPGRADE_PORT)], "upgrade-peer")
        for n, version in [(2, "v1"), (3, "v2"), (4, "mirror")]:
            self.start([ECHO_SERVER, "--bind=" + self.ip(n), "--port=8080",
                        "--version=" + version], "echo-" + version,
                       env={"HOSTNAME": "echo-" + version})
        wp_addr = "%s:%d" % (self.ip(1), self.wp_port)
        args = [HARNESS, "run", "--ca-cert", "ca.crt", "--ca-key", "ca.key"]
        for svc, vip in [("echo", "10.96.0.10"), ("web", "10.96.0.20"), ("h2svc", "10.96.0.30"),
                         ("nowhere", "10.96.0.99"), ("guarded", "10.96.0.40"),
                         ("ws", "10.96.0.50")]:
            args += ["--out", "%s:%d,%s,%s:80,%s,%s" % (self.ip(1), self.ports[svc], wp_addr,
                                                        vip, CLIENT_ID, WAYPOINT_ID)]
        for n in (2, 3, 4):
            args += ["--in", "%s:15008,%s" % (self.ip(n), BACKEND_ID)]
        self.start(args, "harness")
        # WP_WRAPPER="valgrind --leak-check=full ..." runs the waypoint under a tool
        self.start(os.environ.get("WP_WRAPPER", "").split() + [WAYPOINT, "--config-dir", "cfg", "--ca-cert", "ca.crt", "--ca-key", "ca.key",
                    "--pod-namespace", "test", "--service-account", "waypoint",
                    "--listen-addr", wp_addr, "--workers", "2",
                    "--admin-addr", "%s:%d" % (self.ip(1), self.admin),
                    "--metrics-addr", "%s:%d" % (self.ip(1), self.metrics),
                    "--ready-addr", "%s:%d" % (self.ip(1), self.ready),
                    "--head-timeout", "%ds" % HEAD_TIMEOUT_S,
                    "--idle-timeout", "%ds" % IDLE_TIMEOUT_S] + os.environ.get("WP_EXTRA", "").split(), "waypoint")
        deadline = time.time() + (60 if os.environ.get("WP_WRAPPER") else 10)
        while time.time() < deadline:
            try:
                if self.get(self.ready, "/healthz/ready")[0] == 200 and self.echo_up():
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError("waypoint not ready:\n" + self.log("waypoint")[-3000:])

    def echo_up(self):
        try:
            for n in (2, 3, 4):
                socket.create_connection((self.ip(n), 8080), timeout=1).close()
                socket.create_connection((self.ip(n), 15008), timeout=1).close()
            socket.create_connection((self.ip(2), UPGRADE_PORT), timeout=1).close()
        except OSError:
            return False
        return True

    def upgrade_heads(self):
        """The request heads the upgrade backend saw: [(request line, {name: [values]})]."""
        out = []
        for line in self.log("upgrade-peer").splitlines():
            if line.startswith("{"):
                h = json.loads(line)
                out.append((h["line"], h["fields"]))
        return out

    def down(self):
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def get(self, port, path):
        with urllib.request.urlopen("http://%s:%d%s" % (self.ip(1), port, path),
                                    timeout=5) as r:
            return r.status, r.read().decode()

    def client(self, svc, path, *args, timeout=10):
        url = "http://%s:%d%s" % (self.ip(1), self.ports[svc], path)
        t0 = time.time()
        r = subprocess.run([ECHO_CLIENT, url, "--timeout", str(timeout)] + list(args),
                           capture_output=True, text=True, timeout=timeout + 20)
        return Result(r.stdout, time.time() - t0)

    def raw(self, svc, data, wait=3.0, pause=None):
        """Send bytes on one connection; returns (everything read, closed by the server)."""
        s = socket.create_connection((self.ip(1), self.ports[svc]), timeout=wait)
        try:
            if pause is None:
                s.sendall(data)
            else:
                for piece in data:
                    s.sendall(piece)
                    time.sleep(pause)
            out, closed = b"", False
            end = time.time() + wait
            while time.time() < end:
                try:
                    chunk = s.recv(65536)
                except socket.timeout:
                    break
                except ConnectionResetError:
                    closed = True
                    break
                if not chunk:
                    closed = True
                    break
                out += chunk
            return out, closed
        finally:
            s.close()


class Result:
    def __init__(self, out, elapsed):
        self.out = out
        self.elapsed = elapsed
        self.items = {}
        for line in out.splitlines():
            m = re.match(r"\[(\d+)( body)?\] (.*)", line)
            if m:
                self.items.setdefault(int(m.group(1)), []).append((bool(m.group(2)), m.group(3)))

    def status(self, i=0):
        for body, text in self.items.get(i, []):
            if not body and text.startswith("StatusCode="):
                return int(text.split("=", 1)[1])
        return None

    def field(self, key, i=0):
        for body, text in self.items.get(i, []):
            if body and text.startswith(key + "="):
                return text.split("=", 1)[1]
        return None

    def header(self, name, i=0):
        for body, text in self.items.get(i, []):
            if not body and text.startswith("ResponseHeader=" + name + ":"):
                return text.split(":", 1)[1]
        return None

    def request_header(self, name, i=0):
        return [t.split(":", 1)[1] for b, t in self.items.get(i, [])
                if b and t.startswith("RequestHeader=" + name + ":")]

    def statuses(self):
        return [self.status(i) for i in sorted(self.items)]


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    for prog in (WAYPOINT, HARNESS, ECHO_SERVER, ECHO_CLIENT):
        if not os.path.exists(prog):
            pytest.skip("%s not built" % prog)
    e = Env(str(tmp_path_factory.mktemp("wp")))
    try:
        e.up()
        yield e
    finally:
        e.down()


# ---- routing ----

def test_passthrough_balances_per_request(env):
    r = env.client("echo", "/", "--count", "60")
    assert r.statuses() == [200] * 60
    versions = {r.field("ServiceVersion", i) for i in range(60)}
    assert versions == {"v1", "v2"}, r.out[:2000]
    # the client's address as the client-side harness saw it (forwarded: for=...)
    assert re.match(r"^127\.\d+\.\d+\.\d+$", r.request_header("X-Forwarded-For")[0])
    assert re.match(r"^[0-9a-f-]{36}$", r.request_header("X-Request-Id")[0])


def test_request_id_kept(env):
    r = env.client("echo", "/", "-H", "X-Request-Id:my-id-1")
    assert r.request_header("X-Request-Id") == ["my-id-1"]


def test_split_by_weight(env):
    n = 200
    r = env.client("web", "/split", "--count", str(n))
    assert r.statuses() == [200] * n
    v1 = sum(1 for i in range(n) if r.field("ServiceVersion", i) == "v1")
    assert 0.68 * n <= v1 <= 0.92 * n, v1


def test_header_modifiers(env):
    r = env.client("web", "/hdr", "-H", "X-Remove:gone", "-H", "X-Add:original")
    assert r.status() == 200
    assert r.request_header("X-Set") == ["set-value"]
    assert sorted(r.request_header("X-Add")) == ["added", "original"]
    assert r.request_header("X-Remove") == []
    assert r.header("X-Resp") == "resp-value"


def test_redirect_location(env):
    r = env.client("web", "/redirect/a/b?q=1")
    assert r.status() == 301
    assert r.header("Location") == "http://example.com/new/a/b?q=1"


def test_rewrite_seen_by_backend(env):
    r = env.client("web", "/rewrite/x?y=1")
    assert r.status() == 200
    assert r.field("URL") == "/rewritten/x?y=1"
    assert r.field("Host") == "rewritten.example"


def test_no_match_404(env):
    assert env.client("web", "/nothing-here").status() == 404


def test_invalid_backend_500(env):
    assert env.client("web", "/bad").status() == 500


def test_no_backends_500(env):
    assert env.client("web", "/empty").status() == 500


def test_unknown_vip_refused(env):
    out, closed = env.raw("nowhere", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert out == b"" and closed


# ---- AuthorizationPolicy ----

def test_authorization_policies_targeting_the_service_and_the_waypoint(env):
    assert env.client("guarded", "/anything", "--method", "POST").status() == 200  # no policy
    path = os.path.join(env.tmp, "cfg", "policies.yaml")
    with open(path, "w") as fh:
        fh.write(POLICIES)
    try:
        deadline = time.time() + 10
        while time.time() < deadline and env.client("guarded", "/no").status() != 403:
            time.sleep(0.2)
        assert env.client("guarded", "/ok/1").status() == 200
        denied = env.client("guarded", "/ok/1", "--method", "POST")
        assert denied.status() == 403 and "RBAC: access denied" in denied.out, denied.out
        assert env.client("guarded", "/no").status() == 403
        assert env.client("guarded", "/ok/1", "-H", "X-Evil:1").status() == 403
        assert env.client("guarded", "/ok/1", "-H", "X-Evil:0").status() == 200
        # Services without this waypoint are not its policies' business
        assert env.client("echo", "/ok/1", "-H", "X-Evil:1").status() == 200
        assert env.client("echo", "/x", "--method", "POST").status() == 200
        assert re.search(r"status=403 .*flags=DENY", env.log("waypoint")), \
            env.log("waypoint")[-2000:]
    finally:
        os.unlink(path)
    deadline = time.time() + 10
    while time.time() < deadline and env.client("guarded", "/no").status() != 200:
        time.sleep(0.2)
    assert env.client("guarded", "/no", "--method", "POST").status() == 200


# ---- timeouts, retries, mirrors ----

def test_request_timeout_504(env):
    r = env.client("web", "/slow?delay=2s")
    assert r.status() == 504
    assert r.elapsed < 1.5, r.elapsed


def test_retry_after_failures_with_backoff(env):
    key = "k%d" % random.randint(0, 1 << 30)
    r = env.client("web", "/retry?fail_first=2&key=" + key)
    assert r.status() == 200, r.out
    assert r.elapsed >= 0.4, r.elapsed  # two retries, 200 ms backoff each


def test_retry_replays_post_body(env):
    key = "p%d" % random.randint(0, 1 << 30)
    body = "payload-" + "x" * 5000
    r = env.client("web", "/retry?fail_first=2&key=" + key, "--method", "POST", "--body", body)
    assert r.status() == 200, r.out
    assert r.field("BodySha256") == hashlib.sha256(body.encode()).hexdigest()
    assert r.field("BodyLength") == str(len(body))


def test_retry_exhausted_returns_last_status(env):
    key = "e%d" % random.randint(0, 1 << 30)
    r = env.client("web", "/retry?fail_first=9&key=" + key)
    assert r.status() == 503
    assert r.elapsed >= 0.6, r.elapsed


def test_no_retry_without_stanza(env):
    key = "n%d" % random.randint(0, 1 << 30)
    assert env.client("web", "/noretry?fail_first=1&key=" + key).status() == 503


def test_backend_request_timeout_retried(env):
    r = env.client("web", "/attempt-timeout?delay=1s")
    assert r.status() == 504
    # three attempts of 300 ms and two backoffs of 100 ms, well under the 5 s request timeout
    assert 0.9 <= r.elapsed < 2.5, r.elapsed


def test_stream_idle_timeout_without_route_timeout(env):
    # no route on "echo", no default-request-timeout: idleness ends the request
    r = env.client("echo", "/?delay=6s")
    assert r.status() == 504
    assert IDLE_TIMEOUT_S - 0.2 <= r.elapsed < IDLE_TIMEOUT_S + 1.5, r.elapsed


def test_mirror_reaches_mirror_backend(env):
    key = "m%d" % random.randint(0, 1 << 30)
    # Use up the primary backend's one failure for this key first.
    subprocess.run([ECHO_CLIENT, "http://%s:8080/mirror?fail_first=1&key=%s" % (env.ip(2), key)],
                   capture_output=True)
    r = env.client("web", "/mirror?fail_first=1&key=" + key)
    assert r.status() == 200
    assert r.field("ServiceVersion") == "v1"
    time.sleep(0.5)
    # The mirror consumed the mirror backend's one failure for this key.
    direct = subprocess.run([ECHO_CLIENT, "http://%s:8080/mirror?fail_first=1&key=%s" %
                             (env.ip(4), key)], capture_output=True, text=True)
    assert "StatusCode=200" in direct.stdout, direct.stdout


def test_mirror_does_not_delay(env):
    r = env.client("web", "/mirror?delay=0s", "--count", "5")
    assert r.statuses() == [200] * 5
    assert r.elapsed < 2


# ---- protocols ----

def test_h2_inner(env):
    r = env.client("echo", "/h2", "--h2", "--count", "10")
    assert r.statuses() == [200] * 10
    assert {r.field("ServiceVersion", i) for i in range(10)} == {"v1", "v2"}


def test_h2_routes(env):
    r = env.client("web", "/redirect/z", "--h2")
    assert r.status() == 301 and r.header("Location") == "http://example.com/new/z"
    r = env.client("web", "/rewrite/q", "--h2")
    assert r.status() == 200 and r.field("URL") == "/rewritten/q"


def test_h2_post(env):
    body = "y" * 70000
    r = env.client("echo", "/", "--h2", "--method", "POST", "--body", body)
    assert r.status() == 200
    assert r.field("BodySha256") == hashlib.sha256(body.encode()).hexdigest()


def test_upstream_h2_by_app_protocol(env):
    r = env.client("h2svc", "/up")
    assert r.status() == 200
    assert r.field("Proto") == "HTTP/2.0"
    r = env.client("h2svc", "/up", "--h2", "--method", "POST", "--body", "abc")
    assert r.status() == 200 and r.field("BodyLength") == "3"


def test_large_response(env):
    # ?headers= makes the response carry a header; a big body comes from a big request header
    # echoed back: 60 KiB of RequestHeader lines.
    r = env.client("echo", "/", "-H", "X-Big:" + "b" * 60000)
    assert r.status() == 200
    assert len(r.request_header("X-Big")[0]) == 60000


def test_pipelining(env):
    req = b"GET /one HTTP/1.1\r\nHost: a\r\n\r\nGET /two HTTP/1.1\r\nHost: a\r\n\r\n"
    out, _ = env.raw("echo", req, wait=2)
    assert out.count(b"HTTP/1.1 200") == 2
    assert out.index(b"URL=/one") < out.index(b"URL=/two")


def test_connection_close(env):
    out, closed = env.raw("echo", b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 200") and closed


def test_http10(env):
    out, closed = env.raw("echo", b"GET /ten HTTP/1.0\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 200") and b"URL=/ten" in out and closed


# ---- hostile input ----

HOSTILE = [
    ("cl-and-te", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n"
     b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    ("differing-cl", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nContent-Length: 5\r\n"
     b"\r\nabcde", 400),
    ("bare-lf", b"GET / HTTP/1.1\nHost: a\n\n", 400),
    ("bare-cr", b"GET / HTTP/1.1\r\nHost: a\rX: y\r\n\r\n", 400),
    ("space-before-colon", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length : 3\r\n\r\nabc", 400),
    ("space-before-name", b"POST / HTTP/1.1\r\nHost: a\r\n Content-Length: 3\r\n\r\nabc", 400),
    ("obs-fold", b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n\tc\r\n\r\n", 400),
    ("nul-in-value", b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n", 400),
    ("te-gzip", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
    ("chunked-not-last", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n"
     b"\r\n", 400),
    ("no-host", b"GET / HTTP/1.1\r\n\r\n", 400),
    ("two-hosts", b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    ("bad-chunk", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400),
    ("http2-version", b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505),
    ("oversized-head", b"GET / HTTP/1.1\r\nHost: a\r\nX: " + b"a" * 70000 + b"\r\n\r\n", 431),
    ("too-many-headers", b"GET / HTTP/1.1\r\nHost: a\r\n" +
     b"".join(b"X-%d: v\r\n" % i for i in range(150)) + b"\r\n", 431),
]


@pytest.mark.parametrize("name,data,status", HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_refused(env, name, data, status):
    out, closed = env.raw("echo", data)
    assert out.startswith(b"HTTP/1.1 %d" % status), out[:200]
    assert closed


def test_smuggled_request_not_forwarded(env):
    # A TE.CL smuggling attempt must not let "GET /smuggled" reach a backend.
    data = (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n"
            b"\r\n5c\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n0\r\n\r\n")
    out, closed = env.raw("echo", data)
    assert b"URL=/smuggled" not in out and closed


def test_slow_headers_408_others_unaffected(env):
    s = socket.create_connection((env.ip(1), env.ports["echo"]), timeout=5)
    try:
        s.sendall(b"GET / HTTP/1.1\r\nHost: a\r\n")
        t0 = time.time()
        ok = env.client("echo", "/", "--count", "3")  # a parallel well-behaved client
        assert ok.statuses() == [200] * 3
        s.settimeout(HEAD_TIMEOUT_S + 3)
        data = s.recv(4096)
        assert data.startswith(b"HTTP/1.1 408"), data
        assert time.time() - t0 < HEAD_TIMEOUT_S + 2
        assert s.recv(4096) == b""
    finally:
        s.close()


def test_hostile_does_not_hurt_parallel_clients(env):
    import threading
    stop = time.time() + 2
    errors = []

    def attack():
        while time.time() < stop:
            for _, data, _ in HOSTILE:
                try:
                    env.raw("echo", data, wait=0.5)
                except OSError as e:
                    errors.append(e)

    threads = [threading.Thread(target=attack) for _ in range(3)]
    for t in threads:
        t.start()
    r = env.client("echo", "/", "--count", "50")
    for t in threads:
        t.join()
    assert r.statuses() == [200] * 50


# ---- observability ----

def test_metrics(env):
    env.client("web", "/hdr")
    _, text = env.get(env.metrics, "/metrics")
    lines = [ln for ln in text.splitlines() if ln.startswith("istio_requests_total{")]
    assert lines
    hdr = [ln for ln in lines if 'destination_service_name="echo-v1"' in ln and
           'response_code="200"' in ln]
    assert hdr, lines
    for label in ('reporter="waypoint"', 'source_principal="%s"' % CLIENT_ID,
                  'destination_workload="echo-v1"', 'destination_workload_namespace="test"',
                  'destination_principal="%s"' % BACKEND_ID, 'request_protocol="http"',
                  'connection_security_policy="mutual_tls"', 'response_flags="-"',
                  'destination_service="echo-v1.test.svc.cluster.local"'):
        assert label in hdr[0], (label, hdr[0])
    assert any(ln.startswith("istio_request_duration_milliseconds_bucket{") for ln in
               text.splitlines())
    assert any('response_code="404"' in ln and 'response_flags="NR"' in ln for ln in lines)


def test_access_log(env):
    env.client("web", "/hdr?x=1", "-H", "X-Request-Id:log-test-id")
    time.sleep(0.2)
    lines = [ln for ln in env.log("waypoint").splitlines()
             if "sub=access" in ln and "request_id=log-test-id" in ln]
    assert lines
    ln = lines[-1]
    for part in ("method=GET", "path=\"/hdr?x=1\"" if "path=\"" in ln else "path=/hdr?x=1",
                 "status=200", "route=test/web-routes", "rule=1", "rule_name=headers",
                 "upstream=%s:8080" % env.ip(2), "retries=0", "duration_ms="):
        assert part in ln, (part, ln)


def test_config_dump(env):
    import json
    _, body = env.get(env.admin, "/config_dump")
    dump = json.loads(body)
    assert dump["waypoint"]["identity"] == WAYPOINT_ID
    assert "snapshot" in dump and dump["identity"]["certificates"]


# ---- hostile HTTP/2 (raw frames with python3-h2's hyperframe and hpack) ----

def h2_frames(env, frames, wait=3.0, preface=True):
    """Send the preface, SETTINGS and the given frames on one connection; returns the frames
    the server sent (parsed) and whether it closed the connection."""
    from hyperframe.frame import Frame, SettingsFrame
    s = socket.create_connection((env.ip(1), env.ports["echo"]), timeout=wait)
    out = (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + SettingsFrame(0).serialize()) if preface else b""
    for f in frames:
        out += f if isinstance(f, bytes) else f.serialize()
    got, closed = b"", False
    try:
        s.sendall(out)
        end = time.time() + wait
        while time.time() < end:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                closed = True
                break
            if not chunk:
                closed = True
                break
            got += chunk
    except (BrokenPipeError, ConnectionResetError):
        closed = True
    finally:
        s.close()
    parsed = []
    while len(got) >= 9:
        f, length = Frame.parse_frame_header(memoryview(got[:9]))
        if len(got) < 9 + length:
            break
        f.parse_body(memoryview(got[9:9 + length]))
        parsed.append(f)
        got = got[9 + length:]
    return parsed, closed


def h2_headers(stream_id, extra=(), end_stream=True, end_headers=True, path="/"):
    from hpack import Encoder
    from hyperframe.frame import HeadersFrame
    block = Encoder().encode([(":method", "GET"), (":scheme", "http"), (":authority", "a"),
                              (":path", path)] + list(extra))
    f = HeadersFrame(stream_id, block)
    if end_stream:
        f.flags.add("END_STREAM")
    if end_headers:
        f.flags.add("END_HEADERS")
    return f


def test_h2_raw_request(env):
    frames, _ = h2_frames(env, [h2_headers(1)])
    assert any(f.type == 0x1 and f.stream_id == 1 for f in frames)  # response HEADERS


def test_h2_rapid_reset_goaway(env):
    from hyperframe.frame import RstStreamFrame
    frames = []
    for i in range(1, 2 * 3000, 2):  # far past the reset budget (burst 10x the rate)
        frames += [h2_headers(i, end_stream=False), RstStreamFrame(i, error_code=8)]
    got, closed = h2_frames(env, frames, wait=5)
    goaways = [f for f in got if f.type == 0x7]
    assert goaways and closed, [f.type for f in got][-5:]
    # a well-behaved client is unaffected
    assert env.client("echo", "/", "--h2", "--count", "5").statuses() == [200] * 5


def test_h2_unfinished_header_block_closed(env):
    f = h2_headers(1, end_headers=False)
    t0 = time.time()
    _, closed = h2_frames(env, [f], wait=HEAD_TIMEOUT_S + 3)
    assert closed and time.time() - t0 < HEAD_TIMEOUT_S + 2.5


def test_h2_continuation_flood(env):
    from hyperframe.frame import ContinuationFrame
    frames = [h2_headers(1, end_headers=False)] + [ContinuationFrame(1, b"") for _ in range(100)]
    got, closed = h2_frames(env, frames)
    assert closed and any(f.type == 0x7 for f in got)


def test_h2_oversized_header_list(env):
    frames, _ = h2_frames(env, [h2_headers(1, extra=[("x-big", "v" * 70000)])])
    # refused: RST_STREAM, GOAWAY or a 431, never a forwarded request
    assert any(f.type in (0x3, 0x7) for f in frames) or \
        any(f.type == 0x1 and f.stream_id == 1 for f in frames)
    assert env.client("echo", "/", "--h2").status() == 200


def test_h2_connection_header_refused(env):
    frames, _ = h2_frames(env, [h2_headers(1, extra=[("connection", "close")])])
    assert any(f.type == 0x3 and f.stream_id == 1 for f in frames)  # RST_STREAM: malformed


# ---- bodies ----

def test_large_post_streamed(env):
    body = "L" * 120000  # an argument: under the 128 KiB limit of one argv string
    r = env.client("echo", "/big", "--method", "POST", "--body", body)
    assert r.status() == 200
    assert r.field("BodySha256") == hashlib.sha256(body.encode()).hexdigest()


def test_chunked_post(env):
    chunks = [b"hello ", b"chunked ", b"world"]
    data = b"POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    data += b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\n\r\n"
    out, closed = env.raw("echo", data)
    assert out.startswith(b"HTTP/1.1 200") and closed
    want = hashlib.sha256(b"".join(chunks)).hexdigest().encode()
    assert b"BodySha256=" + want in out


def test_no_retry_once_body_streamed(env):
    # a body past --max-body-buffer (64 KiB) cannot be replayed: the 503 comes back as is
    key = "s%d" % random.randint(0, 1 << 30)
    r = env.client("web", "/retry?fail_first=1&key=" + key, "--method", "POST",
                   "--body", "b" * 100000)
    assert r.status() == 503


def test_expect_continue(env):
    s = socket.create_connection((env.ip(1), env.ports["echo"]), timeout=5)
    try:
        s.sendall(b"POST /e HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n"
                  b"\r\n")
        assert s.recv(4096).startswith(b"HTTP/1.1 100 Continue")
        s.sendall(b"hello")
        out = b""
        while b"Hostname=" not in out:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
        assert out.startswith(b"HTTP/1.1 200") and b"BodyLength=5" in out
    finally:
        s.close()


def test_head_request(env):
    out, _ = env.raw("echo", b"HEAD / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    head, _, rest = out.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and rest == b""


# ---- upgrade (WebSocket) ----

UPGRADE_REQ = (b"GET /chat HTTP/1.1\r\nHost: ws\r\nConnection: keep-alive, Upgrade\r\n"
               b"Upgrade: websocket\r\nX-Trace: t1\r\n\r\n")


def read_head(s):
    head, rest = recv_head(s)
    return (head or b"").decode("latin-1").lower(), rest


def read_exact(s, n):
    buf = b""
    while len(buf) < n:
        d = s.recv(65536)
        if not d:
            break
        buf += d
    return buf


def upgraded(env, data, timeout=10):
    """A connection to Service ws that sent data (an upgrade request) and got its 101: (the socket,
    the 101 head in lower case, the bytes that came after the head)."""
    s = socket.create_connection((env.ip(1), env.ports["ws"]), timeout=timeout)
    s.sendall(data)
    head, rest = read_head(s)
    if not head.startswith("http/1.1 101"):
        s.close()
        pytest.fail("no 101: %r" % head)
    return s, head, rest


def test_upgrade_tunnels_both_ways(env):
    s, head, rest = upgraded(env, UPGRADE_REQ.replace(b"/chat", b"/chat-big"))
    with s:
        assert "\r\nconnection: upgrade" in head and "\r\nupgrade: websocket" in head
        assert "x-backend: upgrade-server" in head
        assert "content-length" not in head and "transfer-encoding" not in head
        assert rest == b""
        s.sendall(b"hello")
        assert read_exact(s, 5) == b"HELLO"
        big = bytes(random.choice(b"abcdefgh") for _ in range(300000))
        s.sendall(big)   # more than the windows and queues between: back-pressure both ways
        assert read_exact(s, len(big)) == big.upper()
        s.shutdown(socket.SHUT_WR)    # the client's end reaches the backend, whose BYE comes back
        assert read_to_end(s) == b"BYE"
    line, fields = [h for h in env.upgrade_heads() if h[0].startswith("GET /chat-big")][-1]
    assert fields["upgrade"] == ["websocket"] and "upgrade" in fields["connection"][0].lower()
    assert fields["x-trace"] == ["t1"] and "x-forwarded-for" in fields
    assert "keep-alive" not in fields["connection"][0].lower()   # hop-by-hop options stay here
    # one access-log line for the whole tunnel, with the bytes of both directions
    want = re.compile(r"path=/chat-big status=101 .* bytes_in=300005 bytes_out=300008 error=-")
    deadline = time.time() + 5
    while time.time() < deadline and not want.search(env.log("waypoint")):
        time.sleep(0.1)
    assert want.search(env.log("waypoint")), env.log("waypoint")[-2000:]


def test_upgrade_bytes_sent_early_wait_for_the_101(env):
    s, _, rest = upgraded(env, UPGRADE_REQ + b"early")
    with s:
        got = rest + read_exact(s, 5 - len(rest))
        assert got == b"EARLY"
        s.shutdown(socket.SHUT_WR)
        assert read_to_end(s) == b"BYE"


def test_upgrade_backend_ends_first(env):
    s, _, rest = upgraded(env, UPGRADE_REQ.replace(b"/chat", b"/server-ends"))
    with s:
        assert rest + read_to_end(s) == b"BYE"     # its end arrives as ours
    assert env.client("echo", "/after").status() == 200


def test_upgrade_refused_by_backend_closes_after_the_answer(env):
    out, closed = env.raw("ws", UPGRADE_REQ.replace(b"/chat", b"/refuse") + b"not a request")
    assert out.startswith(b"HTTP/1.1 426") and out.endswith(b"no\n") and closed


def test_101_not_asked_for_is_an_upstream_error(env):
    # A 101 to a plain request is a malformed response: answered like any other (503, as an
    # upstream that fails before its response), the backend's bytes never reach the client.
    out, closed = env.raw("ws", b"GET /unasked HTTP/1.1\r\nHost: ws\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 503") and b"101" not in out, out[:200]


def test_upgrade_to_another_protocol_than_asked_is_an_upstream_error(env):
    out, closed = env.raw("ws", UPGRADE_REQ.replace(b"/chat", b"/other-proto"))
    assert out.startswith(b"HTTP/1.1 503") and b"101" not in out, out[:200]


@pytest.mark.parametrize("proto", [b"h2c", b"foo"])
def test_upgrade_protocols_not_allowed_are_dropped(env, proto):
    # --upgrade-protocols (default websocket) lists what is passed on, and h2c never is: after
    # its 101, requests would travel unseen by routes and policies. The request goes on as a
    # plain one on a kept-alive connection.
    req = (b"GET /not-allowed-%s HTTP/1.1\r\nHost: ws\r\nConnection: Upgrade, HTTP2-Settings\r\n"
           b"Upgrade: %s\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n" % (proto, proto))
    out, closed = env.raw("ws", req + b"GET /next HTTP/1.1\r\nHost: ws\r\n\r\n", wait=2)
    assert out.startswith(b"HTTP/1.1 426") and out.count(b"HTTP/1.1 426") == 2, out[:300]
    line, fields = [h for h in env.upgrade_heads()
                    if h[0].startswith("GET /not-allowed-" + proto.decode())][-1]
    assert "upgrade" not in fields and "http2-settings" not in fields


def test_upgrade_not_offered_to_an_h2_backend(env):
    # HTTP/2 has no Upgrade: the request goes on as a plain one, and the connection closes
    # after the answer.
    out, closed = env.raw("h2svc", UPGRADE_REQ)
    assert out.startswith(b"HTTP/1.1 200") and closed
    assert b"RequestHeader=Upgrade" not in out and b"RequestHeader=X-Trace:t1" in out


def test_upgrade_idle_tunnel_closed_after_idle_timeout(env):
    s, _, _ = upgraded(env, UPGRADE_REQ, timeout=IDLE_TIMEOUT_S + 5)
    with s:
        t0 = time.time()
        s.sendall(b"ping")
        assert read_exact(s, 4) == b"PING"
        try:
            tail = read_to_end(s)
        except ConnectionResetError:
            tail = b""
        assert tail in (b"", b"BYE")
        assert IDLE_TIMEOUT_S - 0.5 <= time.time() - t0 <= IDLE_TIMEOUT_S + 3
