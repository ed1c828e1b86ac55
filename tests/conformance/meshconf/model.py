"""A small reference model of GAMMA HTTPRoute semantics, used only by --self-test to cross-check
the hand-written expectations in cases.py against the manifests they run with.

It evaluates one request (client namespace, Service addressed, port, path?query, headers) the
way the spec says a mesh must: route selection by the Service frontend addressed (never Host),
consumer routes replacing producer routes for clients of their namespace, parentRef port
attachment, PathPrefix segment-wise, precedence (Exact > longest prefix > method > #headers >
#query params > older route > ns/name > rule order), 404 on no match, RequestRedirect
(scheme/hostname/port/path, default 302, no :80/:443), URLRewrite path, request and response
header modifiers at rule and backendRef level, weighted backendRefs.
"""

from urllib.parse import parse_qsl

from .cases import CONSUMER_NS, MESH_NS, PodIP

CLIENT_NS = {"mesh": MESH_NS, "consumer": CONSUMER_NS}


class Outcome:
    def __init__(self, status=200, backend=None, location=None, url=None, req_headers=(),
                 resp_headers=(), weights=None):
        self.status, self.backend, self.location, self.url = status, backend, location, url
        self.req_headers = list(req_headers)
        self.resp_headers = list(resp_headers)
        self.weights = weights

    def req_header(self, name):
        vals = [v for n, v in self.req_headers if n.lower() == name.lower()]
        return ",".join(vals) if vals else None

    def resp_header(self, name):
        vals = [v for n, v in self.resp_headers if n.lower() == name.lower()]
        return vals[-1] if vals else None


def routes_of(docs):
    """HTTPRoute objects of a manifest, in file order (= creation order on the lab)."""
    return [d for d in docs if d.get("kind") == "HTTPRoute"]


def evaluate(case, routes):
    """The Outcome the spec prescribes for case given the HTTPRoutes applied."""
    client_ns = CLIENT_NS[case.client]
    port = case.port or 80
    path, _, query = case.path.partition("?")
    headers = list(case.headers)
    host_hdr = next((v for n, v in headers if n.lower() == "host"), None)
    headers = [(n, v) for n, v in headers if n.lower() != "host"]
    if isinstance(case.host, PodIP):
        # a pod addressed directly: never the Service's routes
        return Outcome(backend="echo-" + case.host.labels["version"], url=case.path,
                       req_headers=headers)
    svc, _, svc_ns = case.host.partition(".")
    svc_ns = svc_ns or client_ns
    authority = host_hdr or (case.host if port == 80 else "%s:%d" % (case.host, port))
    attached = [r for r in routes if _attaches(r, svc, svc_ns, port)]
    consumer = [r for r in attached if _ns(r) == client_ns and client_ns != svc_ns]
    producer = [r for r in attached if _ns(r) == svc_ns]
    active = consumer or producer
    if not active:
        return Outcome(backend=svc, url=case.path, req_headers=headers)
    best = _select(active, case.method, path, query, headers)
    if best is None:
        return Outcome(status=404)
    rule, prefix = best
    return _apply(rule, prefix, path, query, headers, authority, port)


def _ns(route):
    return route["metadata"].get("namespace", "default")


def _attaches(route, svc, svc_ns, port):
    for ref in route["spec"].get("parentRefs", []):
        if ref.get("kind") != "Service" or ref.get("group") != "":
            continue
        if ref["name"] != svc or ref.get("namespace", _ns(route)) != svc_ns:
            continue
        if ref.get("port") in (None, port):
            return True
    return False


def _select(routes, method, path, query, headers):
    """(rule, matched PathPrefix value or None) of the best match, or None."""
    best_key, best = None, None
    for r_i, route in enumerate(routes):
        for k, rule in enumerate(route["spec"].get("rules") or [{}]):
            for m_i, m in enumerate(rule.get("matches") or [{}]):
                p = m.get("path") or {"type": "PathPrefix", "value": "/"}
                if not _match(m, p, method, path, query, headers):
                    continue
                exact = p.get("type", "PathPrefix") == "Exact"
                key = (exact, len(p["value"]), bool(m.get("method")), len(m.get("headers", [])),
                       len(m.get("queryParams", [])), -r_i, -k, -m_i)
                if best_key is None or key > best_key:
                    best_key, best = key, (rule, None if exact else p["value"])
    return best


def _match(m, p, method, path, query, headers):
    ptype, value = p.get("type", "PathPrefix"), p["value"]
    if ptype == "Exact" and path != value:
        return False
    if ptype == "PathPrefix" and not _prefix(path, value):
        return False
    if m.get("method") and m["method"] != method:
        return False
    for h in m.get("headers", []):
        got = [v for n, v in headers if n.lower() == h["name"].lower()]
        if not got or got[0] != h["value"]:
            return False
    params = parse_qsl(query, keep_blank_values=True)
    for q in m.get("queryParams", []):
        got = [v for n, v in params if n == q["name"]]
        if not got or got[0] != q["value"]:
            return False
    return True


def _prefix(path, value):
    v = value.rstrip("/")
    return v == "" or path == v or path.startswith(v + "/")


def replace_prefix(path, prefix, repl):
    """ReplacePrefixMatch, segment-aligned, never producing "//" (the spec's table)."""
    rest = path[len(prefix.rstrip("/")):]
    r = repl.rstrip("/")
    if rest == "":
        return r or "/"
    return r + rest


def _new_path(spec, path, prefix):
    if not spec:
        return path
    if spec["type"] == "ReplaceFullPath":
        return spec["replaceFullPath"]
    return replace_prefix(path, prefix, spec["replacePrefixMatch"])


def _modify(headers, mod):
    out = list(headers)
    for h in mod.get("set", []):
        out = [(n, v) for n, v in out if n.lower() != h["name"].lower()] + [(h["name"],
                                                                           h["value"])]
    for h in mod.get("add", []):
        out.append((h["name"], h["value"]))
    drop = {n.lower() for n in mod.get("remove", [])}
    return [(n, v) for n, v in out if n.lower() not in drop]


def _apply(rule, prefix, path, query, headers, authority, port):
    resp = []
    for f in rule.get("filters", []):
        t = f["type"]
        if t == "RequestRedirect":
            return _redirect(f["requestRedirect"], path, prefix, authority, port)
        if t == "RequestHeaderModifier":
            headers = _modify(headers, f["requestHeaderModifier"])
        elif t == "ResponseHeaderModifier":
            resp = _modify(resp, f["responseHeaderModifier"])
        elif t == "URLRewrite":
            path = _new_path(f["urlRewrite"].get("path"), path, prefix)
    refs = rule.get("backendRefs") or []
    if not refs:
        return Outcome(status=500)
    url = path + ("?" + query if query else "")
    live = [b for b in refs if b.get("weight", 1) > 0]
    if len(live) > 1:
        return Outcome(weights={b["name"]: b.get("weight", 1) for b in live})
    ref = live[0]
    for f in ref.get("filters", []):
        if f["type"] == "RequestHeaderModifier":
            headers = _modify(headers, f["requestHeaderModifier"])
    return Outcome(backend=ref["name"], url=url, req_headers=headers, resp_headers=resp)


def _redirect(rr, path, prefix, authority, port):
    scheme = rr.get("scheme") or "http"
    host = rr.get("hostname") or authority.rsplit(":", 1)[0]
    if rr.get("port"):
        to_port = rr["port"]
    elif rr.get("scheme"):
        to_port = 443 if scheme == "https" else 80
    else:
        to_port = port
    default = 443 if scheme == "https" else 80
    hostport = host if to_port == default else "%s:%d" % (host, to_port)
    new_path = _new_path(rr.get("path"), path, prefix)
    return Outcome(status=rr.get("statusCode", 302),
                   location="%s://%s%s" % (scheme, hostport, new_path))
