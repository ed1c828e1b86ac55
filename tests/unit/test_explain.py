#!/usr/bin/env python3
"""End-to-end checks of `waypoint --explain` over real configuration directories.

usage: test_explain.py WAYPOINT FIXTURE_DIR MANIFEST_DIR...

Each case builds a config directory from the mesh conformance base manifests (manifests.yaml)
plus one test manifest (or the local fixture), runs `waypoint --explain` and compares the JSON
it prints with the expected subset. The first MANIFEST_DIR that holds manifests.yaml is used;
none found is a failure, not a skip. Standard library only (Debian's python3).
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

MESH = "gateway-conformance-mesh"
CONSUMER = "gateway-conformance-mesh-consumer"
ABSENT = object()  # the key must not be present

checks = 0
failures = 0


def fail(what, msg):
    global failures
    failures += 1
    print(f"FAIL {what}: {msg}", file=sys.stderr)


def compare(what, got, want, path="$"):
    """True when got contains want: dicts by subset, lists element-wise, scalars by value."""
    if isinstance(want, dict):
        if not isinstance(got, dict):
            fail(what, f"{path}: want an object, got {got!r}")
            return False
        ok = True
        for k, v in want.items():
            if v is ABSENT:
                if k in got:
                    fail(what, f"{path}.{k}: want absent, got {got[k]!r}")
                    ok = False
            elif k not in got:
                fail(what, f"{path}.{k}: missing (have {sorted(got)})")
                ok = False
            else:
                ok = compare(what, got[k], v, f"{path}.{k}") and ok
        return ok
    if isinstance(want, list):
        if not isinstance(got, list) or len(got) != len(want):
            fail(what, f"{path}: want {len(want)} items, got {got!r}")
            return False
        return all([compare(what, g, w, f"{path}[{i}]") for i, (g, w) in
                    enumerate(zip(got, want))])
    if got != want:
        fail(what, f"{path}: want {want!r}, got {got!r}")
        return False
    return True


class Explainer:
    def __init__(self, waypoint, fixture_dir, manifest_dir, tmp):
        self.waypoint = waypoint
        self.fixture_dir = fixture_dir
        self.manifest_dir = manifest_dir
        self.tmp = tmp
        self.dirs = {}

    def config(self, files):
        """A config dir with manifests.yaml plus files (names in the manifest dir, or
        'fixture:NAME' for the local fixtures)."""
        key = tuple(files)
        if key not in self.dirs:
            d = os.path.join(self.tmp, f"cfg{len(self.dirs)}")
            os.mkdir(d)
            shutil.copy(os.path.join(self.manifest_dir, "manifests.yaml"), d)
            for f in files:
                if f.startswith("fixture:"):
                    shutil.copy(os.path.join(self.fixture_dir, f[8:]), d)
                else:
                    shutil.copy(os.path.join(self.manifest_dir, f), d)
            self.dirs[key] = d
        return self.dirs[key]

    def run(self, args):
        p = subprocess.run([self.waypoint] + args, capture_output=True, text=True, timeout=30)
        return p.returncode, p.stdout, p.stderr

    def explain(self, files, to, ns=MESH, path=None, method=None, headers=(), extra=()):
        args = ["--explain", "--config-dir", self.config(files), "--from-namespace", ns,
                "--to", to]
        if path is not None:
            args += ["--path", path]
        if method is not None:
            args += ["--method", method]
        for h in headers:
            args += ["-H", h]
        return self.run(args + list(extra))


def case(ex, what, files, to, want, rc=0, **kw):
    global checks
    checks += 1
    code, out, err = ex.explain(files, to, **kw)
    if code != rc:
        fail(what, f"exit {code}, want {rc}; stderr: {err.strip()}")
        return
    try:
        got = json.loads(out)
    except json.JSONDecodeError as e:
        fail(what, f"not JSON ({e}): {out!r}")
        return
    compare(what, got, want)


def fwd(route, rule, backends, match=0, rule_name=None, **more):
    """Expected subset of a forward decision."""
    want = {"route": {"name": route, "namespace": MESH, "rule_index": rule,
                      "match_index": match},
            "action": "forward", "backends": backends}
    if rule_name is not None:
        want["route"]["rule_name"] = rule_name
    want.update(more)
    return want


def be(name, port, weight=1, ns=MESH, **more):
    d = {"service": name, "namespace": ns, "port": port, "weight": weight}
    d.update(more)
    return d


def redirect(status, location):
    return {"action": "redirect", "status": status, "location": location}


NOT_FOUND = {"route": None, "action": "respond", "status": 404}
PASSTHROUGH = {"route": None, "action": "passthrough"}


def test_split(ex):
    f = ["mesh-split.yaml"]
    svc = {"name": "echo", "namespace": MESH, "port": 80, "port_name": "http"}
    case(ex, "split /v1", f, "echo", fwd("mesh-split", 0, [be("echo-v1", 80)], service=svc,
                                         path="/v1", host="echo"), path="/v1")
    case(ex, "split /v2", f, "echo:80", fwd("mesh-split", 1, [be("echo-v2", 80)]), path="/v2")
    case(ex, "split unmatched", f, "echo", NOT_FOUND, path="/v3")
    case(ex, "split exact /v1/", f, "echo", NOT_FOUND, path="/v1/")
    case(ex, "split default path", f, "echo", NOT_FOUND)
    # no port in the parentRef: every Service port has the routes
    case(ex, "split port 8080", f, "echo:8080",
         fwd("mesh-split", 0, [be("echo-v1", 80)], host="echo:8080",
             service={"port": 8080, "port_name": "http-alt"}), path="/v1")
    case(ex, "split no routes", f, "echo-v2", dict(PASSTHROUGH, service={"name": "echo-v2"}),
         path="/v1")


def test_matching(ex):
    f = ["httproute-matching.yaml"]
    v1 = [be("echo-v1", 8080)]
    v2 = [be("echo-v2", 8080)]
    for path, hdrs, rule, match in [
            ("/", [], 0, 0), ("/example", [], 0, 0), ("/", ["version: one"], 0, 1),
            ("/v2", [], 1, 0), ("/v2/", [], 1, 0), ("/v2/example", [], 1, 0),
            ("/v2example", [], 0, 0), ("/foo/v2/example", [], 0, 0),
            ("/", ["version: two"], 1, 1), ("/", ["Version: two"], 1, 1)]:
        case(ex, f"matching {path} {hdrs}", f, "echo",
             fwd("mesh-matching", rule, v1 if rule == 0 else v2, match=match), path=path,
             headers=hdrs)
    # the parentRef names port 80 only
    case(ex, "matching port 8080", f, "echo:8080", PASSTHROUGH, path="/v2")


def test_query(ex):
    f = ["httproute-query-param-matching.yaml"]
    v1 = [be("echo-v1", 8080)]
    v2 = [be("echo-v2", 8080)]
    r = "mesh-query-param-matching"
    for path, hdrs, want in [
            ("/?animal=whale", [], fwd(r, 0, v1)),
            ("/?animal=dolphin", [], fwd(r, 1, v2)),
            ("/?animal=whale&otherparam=irrelevant", [], fwd(r, 0, v1)),
            ("/?animal=dolphin&color=yellow", [], fwd(r, 1, v2)),
            ("/?color=blue&animal=dolphin", [], fwd(r, 1, v2)),
            ("/?animal=whale&animal=dolphin", [], fwd(r, 0, v1)),
            ("/path1?animal=whale", [], fwd(r, 2, v1)),
            ("/?animal=whale", ["version: one"], fwd(r, 3, v2)),
            ("/path3?animal=shark", [], fwd(r, 4, v1)),
            ("/path4?animal=kraken", ["version: three"], fwd(r, 4, v1, match=1)),
            ("/path5?animal=hydra", [], fwd(r, 5, v1)),
            ("/?animal=hydra", [], fwd(r, 6, v2)),
            ("/", [], NOT_FOUND),
            ("/?animal=whaledolphin", [], NOT_FOUND),
            ("/path4?animal=kraken", [], NOT_FOUND)]:
        case(ex, f"query {path} {hdrs}", f, "echo", want, path=path, headers=hdrs)
    case(ex, "query path keeps the query", f, "echo", {"path": "/?animal=whale&x=1"},
         path="/?animal=whale&x=1")


def test_weights(ex):
    case(ex, "weights 70/30", ["httproute-weight.yaml"], "echo",
         fwd("mesh-weighted-backends", 0, [be("echo-v1", 8080, 70), be("echo-v2", 8080, 30)]))


def test_redirects(ex):
    cases = [
        ("httproute-redirect-host-and-status.yaml", "/hostname-redirect", 302,
         "http://example.org/hostname-redirect"),
        ("httproute-redirect-host-and-status.yaml", "/host-and-status", 301,
         "http://example.org/host-and-status"),
        ("httproute-redirect-path.yaml", "/original-prefix/lemon", 302,
         "http://echo/replacement-prefix/lemon"),
        ("httproute-redirect-path.yaml", "/full/lemon", 302,
         "http://echo/full-path-replacement"),
        ("httproute-redirect-path.yaml", "/path-and-host", 302,
         "http://example.org/replacement-prefix"),
        ("httproute-redirect-path.yaml", "/path-and-status", 301,
         "http://echo/replacement-prefix"),
        ("httproute-redirect-path.yaml", "/full-path-and-host", 302,
         "http://example.org/replacement-full"),
        ("httproute-redirect-path.yaml", "/full-path-and-status", 301,
         "http://echo/replacement-full"),
        ("httproute-redirect-path.yaml", "/original-prefix/a?b=c", 302,
         "http://echo/replacement-prefix/a?b=c"),
        ("httproute-redirect-port.yaml", "/port", 302, "http://echo:8083/port"),
        ("httproute-redirect-port.yaml", "/port-and-host", 302,
         "http://example.org:8083/port-and-host"),
        ("httproute-redirect-port.yaml", "/port-and-status", 301, "http://echo:8083/port-and-status"),
        ("httproute-redirect-port.yaml", "/port-and-host-and-status", 302,
         "http://example.org:8083/port-and-host-and-status"),
        ("httproute-redirect-scheme.yaml", "/scheme", 302, "https://echo/scheme"),
        ("httproute-redirect-scheme.yaml", "/scheme-and-host", 302,
         "https://example.org/scheme-and-host"),
        ("httproute-redirect-scheme.yaml", "/scheme-and-status", 301,
         "https://echo/scheme-and-status"),
        ("httproute-redirect-scheme.yaml", "/scheme-and-host-and-status", 302,
         "https://example.org/scheme-and-host-and-status"),
        ("httproute-303-redirect.yaml", "/redirect", 303, "http://echo/redirect"),
        ("httproute-307-redirect.yaml", "/temporary", 307, "http://echo/temporary"),
        ("httproute-308-redirect.yaml", "/permanent", 308, "http://echo/permanent"),
    ]
    for f, path, status, loc in cases:
        case(ex, f"redirect {path}", [f], "echo", redirect(status, loc), path=path)
    # the Host header's port is dropped; an explicit Host header is honoured
    case(ex, "redirect host header", ["httproute-redirect-scheme.yaml"], "echo",
         redirect(302, "https://other.example/scheme"), path="/scheme",
         headers=["Host: other.example:8080"])
    case(ex, "redirect scheme from --scheme", ["httproute-redirect-port.yaml"], "echo",
         redirect(302, "https://echo:8083/port"), path="/port", extra=["--scheme", "https"])


def test_rewrite(ex):
    f = ["httproute-rewrite-path.yaml"]
    r = "mesh-rewrite-path"
    v1 = [be("echo-v1", 80)]
    for path, rule, want in [
            ("/prefix/one/two", 0, "/one/two"),
            ("/prefix/one", 0, "/one"),
            ("/prefix/one/two?a=b", 0, "/one/two?a=b"),
            ("/strip-prefix", 1, "/"),
            ("/strip-prefix/three", 1, "/three"),
            ("/strip-prefix/", 1, "/"),
            ("/full/one/two", 2, "/one"),
            ("/full/one?x=1", 2, "/one?x=1"),
            ("/prefix/rewrite-path-and-modify-headers/one", 4, "/prefix/one")]:
        case(ex, f"rewrite {path}", f, "echo", fwd(r, rule, v1, path=want), path=path)
    case(ex, "rewrite full and headers", f, "echo",
         fwd(r, 3, v1, path="/test", request_headers={
             "host": "echo", "x-header-set": "set-overwrites-values",
             "x-header-add": "some,header-val-1", "x-header-add-append": "header-val-2",
             "x-header-remove": ABSENT}),
         path="/full/rewrite-path-and-modify-headers/x",
         headers=["X-Header-Set: old", "X-Header-Add: some", "X-Header-Remove: gone"])


HEADER_CASES = [
    ("/set", ["Some-Other-Header: val", "X-Header-Set: some-other-value"],
     {"some-other-header": "val", "x-header-set": "set-overwrites-values"}),
    ("/set", [], {"x-header-set": "set-overwrites-values"}),
    ("/add", ["Some-Other-Header: val", "X-Header-Add: some-other-value"],
     {"some-other-header": "val", "x-header-add": "some-other-value,add-appends-values"}),
    ("/add", [], {"x-header-add": "add-appends-values"}),
    ("/remove", ["X-Header-Remove: val"], {"x-header-remove": ABSENT}),
    ("/multiple", ["X-Header-Set-2: set-val", "X-Header-Add-2: add-val",
                   "X-Header-Remove-2: remove-val"],
     {"x-header-set-1": "header-set-1", "x-header-set-2": "header-set-2",
      "x-header-add-1": "header-add-1", "x-header-add-2": "add-val,header-add-2",
      "x-header-add-3": "header-add-3", "x-header-remove-2": ABSENT}),
    ("/case-insensitivity", ["x-header-set: original-val-set", "x-header-add: original-val-add",
                             "x-header-remove: original-val-remove"],
     {"x-header-set": "header-set", "x-header-add": "original-val-add,header-add",
      "x-header-remove": ABSENT}),
    # repeated request headers: values joined with ","
    ("/add", ["X-Header-Add: a", "x-header-add: b"], {"x-header-add": "a,b,add-appends-values"}),
]


def test_headers(ex):
    f = ["httproute-request-header-modifier.yaml"]
    for path, hdrs, want in HEADER_CASES:
        case(ex, f"headers {path} {hdrs}", f, "echo",
             {"action": "forward", "request_headers": want,
              "backends": [be("echo-v1", 8080, request_headers=ABSENT)]},
             path=path, headers=hdrs)
    # the same filters at backend level: only the backend sees them
    f = ["httproute-request-header-modifier-backend.yaml"]
    for path, hdrs, want in HEADER_CASES:
        untouched = {k: ABSENT for k, v in want.items() if v is not ABSENT and
                     not any(h.lower().startswith(k + ":") for h in hdrs)}
        case(ex, f"backend headers {path} {hdrs}", f, "echo",
             {"action": "forward", "request_headers": untouched,
              "backends": [be("echo-v1", 8080, request_headers=want)]},
             path=path, headers=hdrs)


def test_consumer(ex):
    f = ["mesh-consumer-route.yaml"]
    to = f"echo-v1.{MESH}"
    case(ex, "consumer route", f, to,
         {"route": {"name": "mesh-echo-add-header", "namespace": CONSUMER, "rule_index": 0},
          "route_table": {"kind": "consumer", "client_namespace": CONSUMER},
          "action": "forward", "backends": [be("echo-v1", 80)],
          "response_headers": {"x-header-set": "set"}}, ns=CONSUMER)
    case(ex, "consumer route, port 8080", f, f"{to}:8080",
         {"route": {"name": "mesh-echo-add-header"}, "action": "forward"}, ns=CONSUMER)
    case(ex, "producer namespace ignores the consumer route", f, to, PASSTHROUGH, ns=MESH)
    case(ex, "short name resolves in the client namespace", f, "echo-v1", PASSTHROUGH, ns=MESH)
    case(ex, "short name from the consumer namespace", f, "echo-v1", {"error": f"no Service \"echo-v1\" (resolved from namespace {CONSUMER})"},
         rc=1, ns=CONSUMER)
    # mesh-frontend: a producer route on echo-v2 (all ports)
    case(ex, "frontend producer route", ["mesh-frontend.yaml"], f"echo-v2.{MESH}",
         {"route": {"name": "mesh-split-v1"}, "route_table": {"kind": "producer"},
          "response_headers": {"x-header-set": "set"}}, ns=CONSUMER)


def test_ports(ex):
    f = ["mesh-ports.yaml"]
    case(ex, "ports v1:80", f, "echo-v1:80",
         {"route": {"name": "mesh-split-v1"}, "response_headers": {"x-header-set": "v1"}})
    case(ex, "ports v1:8080", f, "echo-v1:8080", PASSTHROUGH)
    case(ex, "ports v2:80", f, "echo-v2:80",
         {"route": {"name": "mesh-split-v2"}, "response_headers": {"x-header-set": "v2"}})
    case(ex, "ports v2:8080", f, "echo-v2:8080",
         {"route": {"name": "mesh-split-v2"}, "response_headers": {"x-header-set": "v2"}})
    case(ex, "ports echo (no routes)", f, "echo", PASSTHROUGH)


def test_named(ex):
    f = ["httproute-named-rule.yaml"]
    case(ex, "named rule", f, "echo",
         fwd("mesh-http-named-rules", 0, [be("echo-v1", 8080)], rule_name="named-rule"),
         path="/named")
    case(ex, "unnamed rule", f, "echo",
         {"route": {"rule_index": 1, "rule_name": None}, "backends": [be("echo-v2", 8080)]},
         path="/unnamed")


def test_hostnames(ex):
    f = ["mesh-split.yaml"]
    want = {"service": {"name": "echo", "namespace": MESH}, "route": {"name": "mesh-split"}}
    for host in ["echo", f"echo.{MESH}", f"echo.{MESH}.svc", f"echo.{MESH}.svc.cluster.local",
                 f"echo.{MESH}.svc.cluster.local.", f"ECHO.{MESH}"]:
        case(ex, f"hostname {host}", f, host, want, path="/v1")
        case(ex, f"hostname {host} from another namespace", f, host,
             {"error": f"no Service \"echo\" (resolved from namespace {CONSUMER})"}
             if "." not in host else want, rc=1 if "." not in host else 0, ns=CONSUMER,
             path="/v1")
    case(ex, "hostname, another cluster domain", f, f"echo.{MESH}.svc.example.com",
         {"error": f"no Service \"echo.{MESH}.svc.example.com\" (resolved from namespace "
                   f"{MESH})"}, rc=1)
    case(ex, "hostname, explicit cluster domain", f, f"echo.{MESH}.svc.example.com", want,
         path="/v1", extra=["--cluster-domain", "example.com"])
    case(ex, "unknown service", f, "nope", {"error": "no Service \"nope\" (resolved from "
                                                    f"namespace {MESH})"}, rc=1)
    case(ex, "unknown port", f, "echo:81",
         {"error": f"Service {MESH}/echo has no port 81"}, rc=1)


def test_fixture(ex):
    f = ["fixture:fixture.yaml"]
    ns = "explain-test"
    web = {"name": "web", "namespace": ns, "port": 80, "vip": "198.19.0.10"}
    api = {"route": {"name": "web-route", "namespace": ns, "rule_index": 0, "rule_name": "api"},
           "action": "forward"}
    case(ex, "vip", f, "198.19.0.10", dict(api, service=web, host="198.19.0.10"), ns=ns,
         path="/api")
    case(ex, "vip with port", f, "198.19.0.10:80", dict(api, service=web), ns="other",
         path="/api")
    case(ex, "vip, service without routes", f, "198.19.0.11:8080",
         dict(PASSTHROUGH, service={"name": "backend", "port": 8080}, endpoints=1), ns=ns)
    # web-old and web-new name no port: they attach to the admin port too (web-route does not)
    case(ex, "vip, port of portless parentRefs", f, "198.19.0.10:9000",
         dict(NOT_FOUND, service={"port": 9000, "port_name": "admin"}), ns=ns, path="/api")
    case(ex, "vip, port of portless parentRefs, match", f, "198.19.0.10:9000",
         {"route": {"name": "web-old"}}, ns=ns, path="/dup")
    case(ex, "vip, unknown port", f, "198.19.0.10:81",
         {"error": f"Service {ns}/web (VIP 198.19.0.10) has no port 81"}, rc=1, ns=ns)
    case(ex, "ipv6 vip", f, "[fd00::10]:80",
         dict(api, service={"name": "web6", "vip": "fd00::10"}, host="[fd00::10]"), ns=ns,
         path="/api")
    case(ex, "ipv6 vip without port", f, "fd00::10", dict(api, service={"name": "web6"}),
         ns=ns, path="/api")
    case(ex, "pod ip", f, "198.18.1.5:8080",
         {"workload": {"name": "web-1", "namespace": ns}, "route": None,
          "action": "passthrough", "service": ABSENT}, ns=ns)
    case(ex, "unknown ip", f, "10.9.9.9:80",
         {"error": "no Service VIP or pod has the address 10.9.9.9"}, rc=1, ns=ns)
    # everything a forward decision reports
    case(ex, "timeouts, retry, mirrors, response headers", f, "web", dict(
        api,
        backends=[be("backend", 8080, 3, ns,
                     request_headers={"host": "web", "x-backend": "backend"},
                     response_headers={"x-from": "backend"}, path="/api/x?q=1"),
                  be("web", 80, 1, ns, request_headers=ABSENT)],
        request_headers={"host": "web", "x-backend": ABSENT},
        timeouts={"request": "10s", "backendRequest": "1s500ms"},
        retry={"attempts": 3, "codes": [500, 503], "backoff": "100ms"},
        mirrors=[{"service": "backend", "namespace": ns, "port": 8080, "percent": 50}],
        response_headers={"x-rule": "api", "x-added": "a"},
        response_headers_removed=["Server"]), ns=ns, path="/api/x?q=1")
    case(ex, "method match", f, "web", {"route": {"rule_name": "post-only"}}, ns=ns,
         path="/form", method="POST")
    case(ex, "method mismatch", f, "web", NOT_FOUND, ns=ns, path="/form", method="GET")
    case(ex, "extensionRef", f, "web",
         {"route": {"rule_name": "ext"}, "action": "respond", "status": 500,
          "reason": "ExtensionRef example.com/Plugin magic cannot be resolved"}, ns=ns,
         path="/ext")
    case(ex, "no backendRefs", f, "web",
         {"route": {"rule_name": "empty"}, "action": "respond", "status": 500,
          "reason": "the rule has no backendRefs", "backends": []}, ns=ns, path="/empty")
    case(ex, "all weights 0", f, "web",
         {"route": {"rule_name": "zero"}, "action": "respond", "status": 500,
          "backends": [be("backend", 8080, 0, ns), be("web", 80, 0, ns)]}, ns=ns, path="/zero")
    case(ex, "every weighted backend invalid", f, "web",
         {"route": {"rule_name": "all-invalid"}, "action": "respond", "status": 500,
          "backends": [{"service": "does-not-exist", "weight": 1,
                        "invalid": f"backend Service {ns}/does-not-exist not found "
                                   "(BackendNotFound)"},
                       {"service": "backend", "weight": 0, "invalid": ABSENT}]},
         ns=ns, path="/all-invalid")
    case(ex, "one backend invalid", f, "web",
         {"route": {"rule_name": "partial"}, "action": "forward",
          "backends": [{"service": "does-not-exist", "weight": 1, "invalid":
                        f"backend Service {ns}/does-not-exist not found (BackendNotFound)"},
                       {"service": "backend", "weight": 1, "invalid": ABSENT}]},
         ns=ns, path="/partial")
    case(ex, "regex path", f, "web", {"route": {"rule_name": "regex"}}, ns=ns,
         path="/items/42")
    case(ex, "regex path, whole value", f, "web", NOT_FOUND, ns=ns, path="/items/42/x")
    case(ex, "host rewrite", f, "web",
         {"route": {"rule_name": "rewrite-host"}, "host": "rewritten.example",
          "request_headers": {"host": "rewritten.example"}}, ns=ns, path="/host")
    case(ex, "older route wins", f, "web",
         {"route": {"name": "web-old"}, "backends": [be("backend", 8080, 1, ns)]}, ns=ns,
         path="/dup")


def test_cli(ex):
    global checks
    cfg = ex.config(["mesh-split.yaml"])
    base = ["--explain", "--config-dir", cfg, "--from-namespace", MESH]
    for what, args, rc in [
            ("no --to", base, 2),
            ("no --config-dir", ["--explain", "--from-namespace", MESH, "--to", "echo"], 2),
            ("bad port", base + ["--to", "echo:99999"], 2),
            ("bad -H", base + ["--to", "echo", "-H", "no-colon"], 2),
            ("unknown option", base + ["--to", "echo", "--bogus"], 2),
            ("bad scheme", base + ["--to", "echo", "--scheme", "ftp"], 2),
            ("stray argument", base + ["--to", "echo", "stray"], 2),
            ("help", ["--explain", "--help"], 0),
            ("missing dir", ["--explain", "--config-dir", os.path.join(ex.tmp, "nope"),
                             "--from-namespace", MESH, "--to", "echo"], 1)]:
        checks += 1
        code, out, err = ex.run(args)
        if code != rc:
            fail(f"cli {what}", f"exit {code}, want {rc}; stderr {err.strip()}")
        if rc == 2 and (out or "usage" not in err):
            fail(f"cli {what}", f"usage errors go to stderr only: out {out!r} err {err!r}")
    # --flag=value forms
    checks += 1
    code, out, _ = ex.run(["--explain", f"--config-dir={cfg}", f"--from-namespace={MESH}",
                           "--to=echo", "--path=/v2", "--method=GET", "--header=X-A: 1"])
    if code != 0 or json.loads(out)["route"]["rule_index"] != 1:
        fail("cli --flag=value", f"exit {code}: {out}")
    # a broken file is reported on stderr and does not stop the answer
    checks += 1
    cfg2 = ex.config(["mesh-split.yaml", "fixture:broken.yaml"])
    code, out, err = ex.run(["--explain", "--config-dir", cfg2, "--from-namespace", MESH,
                             "--to", "echo", "--path", "/v1"])
    if code != 0 or json.loads(out)["route"]["name"] != "mesh-split" or "broken.yaml" not in err:
        fail("cli broken file", f"exit {code}: out {out!r} err {err!r}")


def main():
    if len(sys.argv) < 4:
        print(__doc__, file=sys.stderr)
        return 2
    waypoint, fixture_dir = sys.argv[1], sys.argv[2]
    manifest_dir = next((d for d in sys.argv[3:]
                         if os.path.exists(os.path.join(d, "manifests.yaml"))), None)
    if manifest_dir is None:
        print(f"no manifests.yaml in any of {sys.argv[3:]}", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="gm-explain-") as tmp:
        ex = Explainer(waypoint, fixture_dir, manifest_dir, tmp)
        for t in [test_split, test_matching, test_query, test_weights, test_redirects,
                  test_rewrite, test_headers, test_consumer, test_ports, test_named,
                  test_hostnames, test_fixture, test_cli]:
            t(ex)
    print(f"test_explain.py: {checks} cases, {failures} failed", file=sys.stderr)
    return 0 if checks and not failures else 1


if __name__ == "__main__":
    sys.exit(main())
