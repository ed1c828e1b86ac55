"""A small Kubernetes API server for tests (standard library only): list (with pages and continue
tokens) and watch (chunked, with bookmarks, resuming from a resourceVersion, 410 once it is older
than the last compaction) of the kinds gammamesh reads, over HTTPS with a bearer token.

It keeps objects in memory, stamps metadata.resourceVersion/uid/creationTimestamp like the real
server, omits kind and apiVersion from list items like the real server does for core kinds, and
answers errors with a Status object. Tests drive it from Python:

    api = KubeAPI(workdir, token="t0k3n")       # cert for 127.0.0.1 signed by api.ca_cert
    api.start()                                  # api.url == "https://127.0.0.1:PORT"
    api.apply(obj); api.delete("Pod", "ns", "name"); api.compact(); api.drop_watches()
    api.watch_gate.clear() … api.watch_gate.set()   # hold new watches meanwhile
    api.stop()

As a process (`python3 -m gmlab.kubeapi --objects FILE --listen IP:PORT --workdir DIR`), the lab's
API server for `lab up --api`: it serves the objects of FILE (a JSON list the lab rewrites on
every change; a change becomes ADDED, MODIFIED or DELETED events), writes its certificates and
then DIR/ready, and stops on SIGTERM.
"""

import argparse
import base64
import copy
import datetime
import json
import os
import signal
import ssl
import subprocess
import threading
import time
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# plural -> (kind, apiVersion, path prefix, namespaced)
RESOURCES = {
    "namespaces": ("Namespace", "v1", "/api/v1", False),
    "pods": ("Pod", "v1", "/api/v1", True),
    "services": ("Service", "v1", "/api/v1", True),
    "gateways": ("Gateway", "gateway.networking.k8s.io/v1",
                 "/apis/gateway.networking.k8s.io/v1", True),
    "httproutes": ("HTTPRoute", "gateway.networking.k8s.io/v1",
                   "/apis/gateway.networking.k8s.io/v1", True),
    "authorizationpolicies": ("AuthorizationPolicy", "security.istio.io/v1",
                              "/apis/security.istio.io/v1", True),
}
KIND_TO_PLURAL = {v[0]: k for k, v in RESOURCES.items()}
CORE_KINDS = {"Namespace", "Pod", "Service"}


def make_certs(workdir, ips=("127.0.0.1",), names=()):
    """A CA and a server certificate for the given addresses: (ca.crt, server.crt, server.key)."""
    os.makedirs(workdir, exist_ok=True)
    p = lambda n: os.path.join(workdir, n)  # noqa: E731
    run = lambda a: subprocess.run(a, check=True, capture_output=True)  # noqa: E731
    run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", p("api-ca.key"), "-out", p("api-ca.crt"), "-days", "1",
         "-subj", "/CN=fake-kube-api-ca", "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
    san = ",".join(["IP:%s" % i for i in ips] + ["DNS:%s" % n for n in names])  # no localhost
    with open(p("api.ext"), "w") as f:
        f.write("basicConstraints=critical,CA:FALSE\nextendedKeyUsage=serverAuth\n"
                "subjectAltName=%s\n" % san)
    run(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", p("api.key"), "-out", p("api.csr"), "-subj", "/CN=kube-apiserver"])
    run(["openssl", "x509", "-req", "-in", p("api.csr"), "-CA", p("api-ca.crt"),
         "-CAkey", p("api-ca.key"), "-CAcreateserial", "-out", p("api.crt"), "-days", "1",
         "-extfile", p("api.ext")])
    return p("api-ca.crt"), p("api.crt"), p("api.key")


def status(code, reason, message):
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code}


class KubeAPI:
    def __init__(self, workdir, token="fake-token", host="127.0.0.1", port=0,
                 bookmark_interval=1.0, ips=None, log=None):
        self.log_fn = log                            # called with a line per status write
        self.workdir = workdir
        self.token = token
        self.host, self.port = host, port
        self.bookmark_interval = bookmark_interval
        self.ca_cert, self.cert, self.key = make_certs(workdir, ips=ips or (host,))
        self.lock = threading.Condition()
        self.rv = 100
        self.objects = {r: {} for r in RESOURCES}   # plural -> {(ns, name): obj}
        self.log = []                                # (rv, plural, type, obj)
        self.compacted = 0                           # watches from an older rv get 410
        self.not_served = set()                      # plurals answered 404
        self.fail = {}                               # plural -> [status codes to answer next]
        self.gone_as_status = False                  # 410 as HTTP status instead of ERROR event
        self.page_limit_cap = None                   # force small pages
        self.requests = []                           # (method, path, authorization)
        self.generation = 0                          # bumped by drop_watches
        self.raw_next = {}                           # plural -> bytes answered raw, once
        self.status_puts = []                        # (plural, ns, name, body) of status writes
        self.conflict_next = 0                       # answer the next N status writes 409
        self.watch_prefix = {}                       # plural -> raw bytes a watch starts with
        self.watch_gate = threading.Event()          # cleared: new watches wait for it
        self.watch_gate.set()
        self.server = None

    # ---- state, from the test ----

    def _key(self, plural, obj):
        md = obj.get("metadata", {})
        return (md.get("namespace", "") if RESOURCES[plural][3] else "", md["name"])

    def apply(self, obj):
        obj = copy.deepcopy(obj)
        plural = KIND_TO_PLURAL[obj["kind"]]
        md = obj.setdefault("metadata", {})
        if RESOURCES[plural][3]:
            md.setdefault("namespace", "default")
        with self.lock:
            key = self._key(plural, obj)
            old = self.objects[plural].get(key)
            self.rv += 1
            md["resourceVersion"] = str(self.rv)
            # generation counts spec changes; an apply without status keeps the status
            gen = old["metadata"].get("generation", 1) if old else 1
            md["generation"] = gen + 1 if old and old.get("spec") != obj.get("spec") else gen
            if old and "status" not in obj and "status" in old:
                obj["status"] = copy.deepcopy(old["status"])
            md["uid"] = old["metadata"]["uid"] if old else md.get("uid") or str(uuid.uuid4())
            md["creationTimestamp"] = (
                old["metadata"]["creationTimestamp"] if old else md.get("creationTimestamp") or
                datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))
            md["managedFields"] = [{"manager": "test", "operation": "Apply",
                                    "fieldsV1": {"f:metadata": {"f:labels": {}}}}]
            self.objects[plural][key] = obj
            self.log.append((self.rv, plural, "MODIFIED" if old else "ADDED", obj))
            self.lock.notify_all()
            return obj

    def delete(self, kind, namespace, name):
        plural = KIND_TO_PLURAL[kind]
        with self.lock:
            key = (namespace if RESOURCES[plural][3] else "", name)
            obj = self.objects[plural].pop(key, None)
            if obj is None:
                return False
            self.rv += 1
            obj = copy.deepcopy(obj)
            obj["metadata"]["resourceVersion"] = str(self.rv)
            self.log.append((self.rv, plural, "DELETED", obj))
            self.lock.notify_all()
            return True

    def compact(self):
        """Forget the event history: watches from any earlier resourceVersion get 410 Gone."""
        with self.lock:
            self.compacted = self.rv
            self.log = []

    def drop_watches(self):
        """End every open watch stream (as an API server restart would)."""
        with self.lock:
            self.generation += 1
            self.lock.notify_all()

    def count(self, pred):
        with self.lock:
            return sum(1 for r in self.requests if pred(r))

    # ---- server ----

    def start(self):
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_GET(self):
                api._handle(self)

            def do_PUT(self):
                api._put(self)

        class Server(ThreadingHTTPServer):
            request_queue_size = 128  # every daemon opens six watches at once

        self.server = Server((self.host, self.port), Handler)
        self.server.daemon_threads = True
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.cert, self.key)
        self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.url = "https://%s:%d" % (self.host, self.port)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def stop(self):
        if self.server:
            self.drop_watches()
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    # ---- requests ----

    def _send_json(self, h, code, body):
        data = json.dumps(body).encode()
        h.send_response(code)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)

    def _route(self, path):
        for plural, (_, _, prefix, _) in RESOURCES.items():
            if path == "%s/%s" % (prefix, plural):
                return plural
        return None

    def _object_path(self, path):
        """(plural, namespace, name, subresource) of .../namespaces/NS/PLURAL/NAME[/status]."""
        for plural, (_, _, prefix, namespaced) in RESOURCES.items():
            if not namespaced or not path.startswith(prefix + "/namespaces/"):
                continue
            parts = path[len(prefix) + 1:].split("/")
            if len(parts) in (4, 5) and parts[2] == plural:
                return plural, parts[1], parts[3], parts[4] if len(parts) == 5 else None
        return None

    def _get_one(self, h, where):
        plural, ns, name, sub = where
        with self.lock:
            obj = copy.deepcopy(self.objects[plural].get((ns, name)))
        if obj is None or sub not in (None, "status"):
            return self._send_json(h, 404, status(404, "NotFound", "%s %s/%s not found"
                                                  % (plural, ns, name)))
        self._send_json(h, 200, obj)

    def _put(self, h):
        """PUT .../NAME/status: the status of the object, if resourceVersion is current."""
        auth = h.headers.get("Authorization", "")
        body = h.rfile.read(int(h.headers.get("Content-Length", "0") or 0))
        with self.lock:
            self.requests.append(("PUT", h.path, auth))
        if self.token is not None and auth != "Bearer %s" % self.token:
            return self._send_json(h, 401, status(401, "Unauthorized", "Unauthorized"))
        where = self._object_path(urllib.parse.urlsplit(h.path).path)
        if where is None or where[3] != "status":
            return self._send_json(h, 405, status(405, "MethodNotAllowed", "only status"))
        plural, ns, name, _ = where
        try:
            new = json.loads(body)
        except ValueError:
            return self._send_json(h, 400, status(400, "BadRequest", "body is not JSON"))
        with self.lock:
            obj = self.objects[plural].get((ns, name))
            if obj is None:
                return self._send_json(h, 404, status(404, "NotFound", "not found"))
            rv = new.get("metadata", {}).get("resourceVersion")
            if self.conflict_next > 0 or rv != obj["metadata"]["resourceVersion"]:
                self.conflict_next = max(0, self.conflict_next - 1)
                return self._send_json(h, 409, status(
                    409, "Conflict", "the object has been modified; please apply your changes "
                    "to the latest version and try again"))
            obj = copy.deepcopy(obj)
            obj["status"] = new.get("status")
            self.rv += 1
            obj["metadata"]["resourceVersion"] = str(self.rv)
            self.objects[plural][(ns, name)] = obj
            self.log.append((self.rv, plural, "MODIFIED", obj))
            self.status_puts.append((plural, ns, name, new.get("status")))
            self.lock.notify_all()
        if self.log_fn:
            said = ["%s %s" % (p.get("parentRef", {}).get("name"), " ".join(
                "%s=%s/%s/gen%s" % (c.get("type"), c.get("status"), c.get("reason"),
                                    c.get("observedGeneration"))
                for c in p.get("conditions", [])))
                for p in (new.get("status") or {}).get("parents", [])]
            self.log_fn("status %s %s/%s: %s" % (plural, ns, name, "; ".join(said)))
        self._send_json(h, 200, obj)

    def get(self, kind, namespace, name):
        with self.lock:
            return copy.deepcopy(self.objects[KIND_TO_PLURAL[kind]].get((namespace, name)))

    def _handle(self, h):
        u = urllib.parse.urlsplit(h.path)
        q = dict(urllib.parse.parse_qsl(u.query))
        auth = h.headers.get("Authorization", "")
        with self.lock:
            self.requests.append(("GET", h.path, auth))
        if self.token is not None and auth != "Bearer %s" % self.token:
            return self._send_json(h, 401, status(401, "Unauthorized", "Unauthorized"))
        where = self._object_path(u.path)
        if where is not None and where[0] not in self.not_served:
            return self._get_one(h, where)
        plural = self._route(u.path)
        if plural is None or plural in self.not_served:
            return self._send_json(h, 404, status(404, "NotFound",
                                                  "the server could not find the requested "
                                                  "resource"))
        with self.lock:
            pending = self.fail.get(plural)
            code = pending.pop(0) if pending else None
            raw = self.raw_next.pop(plural, None)
        if raw is not None:  # hostile: whatever bytes the test wants, then the end
            h.wfile.write(raw)
            h.wfile.flush()
            h.close_connection = True
            return
        if code:
            return self._send_json(h, code, status(code, "InternalError",
                                                   "injected failure %d" % code))
        if q.get("watch") in ("1", "true"):
            return self._watch(h, plural, q)
        return self._list(h, plural, q)

    def _item(self, plural, obj):
        o = copy.deepcopy(obj)
        if RESOURCES[plural][0] in CORE_KINDS:
            o.pop("kind", None)
            o.pop("apiVersion", None)
        return o

    def _list(self, h, plural, q):
        limit = int(q.get("limit", "0") or 0)
        if self.page_limit_cap:
            limit = min(limit or self.page_limit_cap, self.page_limit_cap)
        with self.lock:
            if "continue" in q:
                try:
                    rv, offset, _ = json.loads(base64.urlsafe_b64decode(q["continue"]))
                except Exception:
                    return self._send_json(h, 400, status(400, "BadRequest", "bad continue"))
                if rv < self.compacted:
                    return self._send_json(h, 410, status(410, "Expired",
                                                          "continue token too old"))
            else:
                rv, offset = self.rv, 0
            items = [self.objects[plural][k] for k in sorted(self.objects[plural])]
        page = items[offset:offset + limit] if limit else items[offset:]
        md = {"resourceVersion": str(rv)}
        if limit and offset + limit < len(items):
            # as long as the real server's (an encoded key and version, a few hundred bytes)
            md["continue"] = base64.urlsafe_b64encode(
                json.dumps([rv, offset + limit, "/registry/" + "k" * 300]).encode()).decode()
        kind = RESOURCES[plural][0]
        self._send_json(h, 200, {"kind": kind + "List", "apiVersion": RESOURCES[plural][1],
                                 "metadata": md,
                                 "items": [self._item(plural, o) for o in page]})

    def _watch(self, h, plural, q):
        # The generation is taken before the gate: a watch that slipped past the gate just as a
        # test cleared it and called drop_watches() is dropped too, never left streaming.
        with self.lock:
            gen = self.generation
        while not self.watch_gate.wait(0.1):
            if self.server is None:
                return
        try:
            since = int(q.get("resourceVersion", "0") or 0)
        except ValueError:
            return self._send_json(h, 400, status(400, "BadRequest", "bad resourceVersion"))
        timeout = float(q.get("timeoutSeconds", "1800"))
        bookmarks = q.get("allowWatchBookmarks") in ("true", "1")
        with self.lock:
            too_old = since < self.compacted
        if too_old and self.gone_as_status:
            return self._send_json(h, 410, status(410, "Expired", "too old resource version"))
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()

        def chunk(ev):
            data = (json.dumps(ev) + "\n").encode()
            h.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            h.wfile.flush()

        try:
            with self.lock:
                prefix = self.watch_prefix.pop(plural, None)
            if prefix is not None:
                h.wfile.write(b"%x\r\n%s\r\n" % (len(prefix), prefix) if prefix else b"")
                h.wfile.flush()
            if too_old:
                chunk({"type": "ERROR", "object": status(
                    410, "Expired", "too old resource version: %d (%d)" % (since,
                                                                           self.compacted))})
                h.wfile.write(b"0\r\n\r\n")
                return
            end = time.monotonic() + timeout
            last_bookmark = time.monotonic()
            sent = since
            while True:
                with self.lock:
                    evs = [e for e in self.log if e[0] > sent and e[1] == plural]
                    if not evs:
                        self.lock.wait(0.2)
                        evs = [e for e in self.log if e[0] > sent and e[1] == plural]
                    dropped = self.generation != gen
                    current = self.rv
                if dropped:
                    # no terminating chunk: the connection just ends. Nothing collected with the
                    # drop is sent: changes a test makes after drop_watches() must reach the
                    # client only through a new watch (or a relist after its 410).
                    return
                for rv, _, typ, obj in evs:
                    chunk({"type": typ, "object": obj})
                    sent = rv
                now = time.monotonic()
                if bookmarks and now - last_bookmark >= self.bookmark_interval:
                    last_bookmark = now
                    sent = max(sent, current)
                    chunk({"type": "BOOKMARK", "object": {
                        "kind": RESOURCES[plural][0], "apiVersion": RESOURCES[plural][1],
                        "metadata": {"resourceVersion": str(sent)}}})
                if now >= end:
                    h.wfile.write(b"0\r\n\r\n")
                    return
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
            return
        finally:
            h.close_connection = True


# ---- the lab's API server process ----

def _ident(obj):
    md = obj.get("metadata", {})
    return obj.get("kind"), md.get("namespace", ""), md.get("name")


def _stripped(obj):
    o = copy.deepcopy(obj)
    for k in ("resourceVersion", "managedFields"):
        o.get("metadata", {}).pop(k, None)
    return o


def serve_main(argv=None):
    ap = argparse.ArgumentParser(prog="gmlab.kubeapi")
    ap.add_argument("--objects", required=True, help="JSON list of objects to serve")
    ap.add_argument("--listen", required=True, metavar="IP:PORT")
    ap.add_argument("--workdir", required=True, help="certificates, token and the ready file")
    args = ap.parse_args(argv)
    host, port = args.listen.rsplit(":", 1)
    token_path = os.path.join(args.workdir, "token")
    with open(token_path) as f:
        token = f.read().strip()
    api = KubeAPI(args.workdir, token=token, host=host, port=int(port), bookmark_interval=5.0,
                  log=lambda line: print(line, flush=True))
    api.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: stop.set())
    signal.signal(signal.SIGINT, lambda *a: stop.set())
    with open(os.path.join(args.workdir, "ready.tmp"), "w") as f:
        f.write(api.url + "\n")
    os.rename(os.path.join(args.workdir, "ready.tmp"), os.path.join(args.workdir, "ready"))
    print("serving %s on %s" % (args.objects, api.url), flush=True)
    served, mtime = {}, None
    while not stop.wait(0.1):
        try:
            st = os.stat(args.objects)
        except FileNotFoundError:
            continue
        if (st.st_mtime_ns, st.st_size) == mtime:
            continue
        mtime = (st.st_mtime_ns, st.st_size)
        try:
            with open(args.objects) as f:
                objs = [o for o in json.load(f) if o.get("kind") in KIND_TO_PLURAL]
        except ValueError:
            continue  # being replaced: the next poll reads it
        now = {_ident(o): o for o in objs}
        for ident in sorted(set(served) - set(now), key=str):
            api.delete(*ident)
            print("deleted %s %s/%s" % ident, flush=True)
        for ident, o in sorted(now.items(), key=lambda kv: str(kv[0])):
            if ident not in served or _stripped(served[ident]) != _stripped(o):
                api.apply(o)
                what = "modified" if ident in served else "added"
                print("%s %s %s/%s" % ((what,) + ident), flush=True)
        served = now
    api.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(serve_main())
