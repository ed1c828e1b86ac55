"""The mesh conformance tests: names, features, manifests and request/expectation cases.

Written from the Gateway API specification (HTTPRoute v1 API docs, GEP-1294 / GEP-1686 for
GAMMA) and the upstream test names; the manifests are the upstream ones, read at run time.
A case marked `extra` checks something the upstream harness does not (an exact redirect
Location, the path the backend saw after a rewrite, or one more request pinned down by a MUST of
the spec); the upstream cases carry `extra=False`.
"""

MESH_NS = "gateway-conformance-mesh"
CONSUMER_NS = "gateway-conformance-mesh-consumer"

# Which pod sends each case's requests (`lab exec` targets): the upstream suite's choices.
CLIENTS = {
    "mesh": MESH_NS + "/app=echo,version=v1",
    "consumer": CONSUMER_NS + "/app=echo",
}

# ---------------------------------------------------------------------------------------------
# Profiles and features (conformance/utils/suite/profiles.go, pkg/features/mesh.go)

PROFILE = "MESH-HTTP"
PROFILE_CORE_FEATURES = ("Mesh", "HTTPRoute")
PROFILE_EXTENDED_FEATURES = (
    "MeshClusterIPMatching",
    "MeshConsumerRoute",
    "MeshHTTPRouteBackendRequestHeaderModification",
    "MeshHTTPRouteNamedRouteRule",
    "MeshHTTPRouteQueryParamMatching",
    "MeshHTTPRouteRedirectPath",
    "MeshHTTPRouteRedirectPort",
    "MeshHTTPRouteRewritePath",
    "MeshHTTPRouteSchemeRedirect",
)
# Features outside MESH-HTTP that the other mesh HTTP tests need; gammamesh claims them too.
OTHER_FEATURES = (
    "HTTPRoute303RedirectStatusCode",
    "HTTPRoute307RedirectStatusCode",
    "HTTPRoute308RedirectStatusCode",
    "HTTPRouteParentRefPort",
    "HTTPRouteResponseHeaderModification",
)


class PodIP:
    """A host that is the IP of the first ready pod matching a selector, found at run time."""

    def __init__(self, namespace, **labels):
        self.namespace, self.labels = namespace, labels

    def __str__(self):
        sel = ",".join("%s=%s" % kv for kv in sorted(self.labels.items()))
        return "<IP of %s/%s>" % (self.namespace, sel)


class Expect:
    """What one response must look like."""

    def __init__(self, status=200, backend=None, req_headers=(), absent_req_headers=(),
                 resp_headers=(), absent_resp_headers=(), location=None, backend_url=None):
        self.status = tuple(status) if isinstance(status, (list, tuple)) else (status,)
        self.backend = backend
        self.req_headers = list(_pairs(req_headers))
        self.absent_req_headers = list(absent_req_headers)
        self.resp_headers = list(_pairs(resp_headers))
        self.absent_resp_headers = list(absent_resp_headers)
        self.location = location
        self.backend_url = backend_url


class Case:
    """One request (sent from `client`'s pod with echo-client) and what it must get."""

    weight = False

    def __init__(self, path, expect, host="echo", port=None, headers=(), method="GET",
                 client="mesh", extra=False, name=None):
        self.path, self.expect, self.host, self.port = path, expect, host, port
        self.headers = list(_pairs(headers))
        self.method, self.client, self.extra = method, client, extra
        self._name = name

    @property
    def name(self):
        if self._name:
            return self._name
        s = "%s %s" % (self.method, self.url_template())
        if self.headers:
            s += " [%s]" % ", ".join("%s: %s" % hv for hv in self.headers)
        if self.client != "mesh":
            s += " from %s" % CLIENTS[self.client].split("/")[0]
        return s

    def url_template(self, host=None):
        h = str(self.host) if host is None else host
        port = "" if self.port in (None, 80) else ":%d" % self.port
        return "http://%s%s%s" % (h, port, self.path)

    def argv(self, host):
        """echo-client arguments, given the resolved host."""
        args = ["echo-client", self.url_template(host), "--timeout", "5s"]
        if self.method != "GET":
            args += ["--method", self.method]
        for n, v in self.headers:
            args += ["-H", "%s:%s" % (n, v)]
        return args


class WeightCase(Case):
    """`count` requests on one keep-alive connection; each backend's share must be within
    +-tolerance of its weight's share, and every request must get 200 from a weighted backend."""

    weight = True

    def __init__(self, path, weights, count=500, tolerance=0.05, host="echo", port=None,
                 client="mesh", name=None):
        super().__init__(path, Expect(200), host=host, port=port, client=client, name=name)
        self.weights, self.count, self.tolerance = dict(weights), count, tolerance

    @property
    def name(self):
        if self._name:
            return self._name
        return "%d x GET %s, split %s" % (self.count, self.url_template(), "/".join(
            "%s=%s" % kv for kv in sorted(self.weights.items())))

    def argv(self, host):
        return super().argv(host) + ["--count", str(self.count)]


class Test:
    def __init__(self, name, description, features, manifest, cases):
        self.name, self.description = name, description
        self.features = tuple(features)
        self.manifest = manifest        # file name in the manifests directory, or None
        self.cases = cases

    @property
    def level(self):
        """"core" or "extended" in MESH-HTTP, or None when the test is outside the profile
        (it needs a feature the profile does not have)."""
        feats = set(self.features)
        if feats <= set(PROFILE_CORE_FEATURES):
            return "core"
        if feats <= set(PROFILE_CORE_FEATURES) | set(PROFILE_EXTENDED_FEATURES):
            return "extended"
        return None


def _pairs(items):
    if isinstance(items, dict):
        return list(items.items())
    return [tuple(x) for x in items]


def get(path, backend=None, status=200, **kw):
    """A GET case; expectation keywords go to Expect, request keywords to Case."""
    case_kw = {k: kw.pop(k) for k in ("host", "port", "headers", "method", "client", "extra",
                                      "name") if k in kw}
    return Case(path, Expect(status=status, backend=backend, **kw), **case_kw)


def redirect(path, status, location, **kw):
    """A request that must be answered by the mesh itself with a redirect. The Location check
    is beyond the upstream harness (it only compares the status)."""
    return get(path, status=status, location=location, **kw)


# ---------------------------------------------------------------------------------------------
# Shared case sets


def _header_modifier_cases():
    """RequestHeaderModifier: set replaces every value, add appends a value (the backend then
    sees both, joined "a,b"), remove deletes; names are case-insensitive."""
    v1 = "echo-v1"
    return [
        get("/set", v1, headers={"Some-Other-Header": "val"},
            req_headers={"Some-Other-Header": "val", "X-Header-Set": "set-overwrites-values"}),
        get("/set", v1, headers={"Some-Other-Header": "val", "X-Header-Set": "some-other-value"},
            req_headers={"Some-Other-Header": "val", "X-Header-Set": "set-overwrites-values"}),
        get("/add", v1, headers={"Some-Other-Header": "val"},
            req_headers={"Some-Other-Header": "val", "X-Header-Add": "add-appends-values"}),
        get("/add", v1, headers={"Some-Other-Header": "val", "X-Header-Add": "some-other-value"},
            req_headers={"Some-Other-Header": "val",
                         "X-Header-Add": "some-other-value,add-appends-values"}),
        get("/remove", v1, headers={"X-Header-Remove": "val"},
            absent_req_headers=["X-Header-Remove"]),
        get("/multiple", v1,
            headers={"X-Header-Set-2": "set-val-2", "X-Header-Add-2": "add-val-2",
                     "X-Header-Remove-2": "remove-val-2", "Another-Header": "another-header-val"},
            req_headers={"X-Header-Set-1": "header-set-1", "X-Header-Set-2": "header-set-2",
                         "X-Header-Add-1": "header-add-1",
                         "X-Header-Add-2": "add-val-2,header-add-2",
                         "X-Header-Add-3": "header-add-3",
                         "Another-Header": "another-header-val"},
            absent_req_headers=["X-Header-Remove-1", "X-Header-Remove-2"]),
        get("/case-insensitivity", v1,
            headers={"x-header-set": "original-val-set", "x-header-add": "original-val-add",
                     "x-header-remove": "original-val-remove",
                     "Another-Header": "another-header-val"},
            req_headers={"X-Header-Set": "header-set",
                         "X-Header-Add": "original-val-add,header-add",
                         "Another-Header": "another-header-val"},
            absent_req_headers=["x-header-remove"]),
    ]


def _redirect_status_cases(path, code):
    # Only statusCode is set: scheme from the request (http), hostname from Host ("echo"),
    # port = the Service port addressed (80, so not written), path unchanged.
    return [redirect(path, code, "http://echo" + path)]


# ---------------------------------------------------------------------------------------------
# The tests, in the order they run

V1, V2 = "echo-v1", "echo-v2"

TESTS = [
    Test("MeshBasic",
         "A meshed client reaches a Service with no routes (default mesh load balancing)",
         ["Mesh"], None,
         [get("/", "echo"),
          get("/", V1, host="echo-v1", extra=True),
          get("/", V2, host="echo-v2", extra=True)]),

    Test("MeshTrafficSplit",
         "A route on a Service (all ports) splits by Exact path to other Services",
         ["Mesh", "HTTPRoute"], "mesh-split.yaml",
         [get("/v1", V1),
          get("/v2", V2),
          # parentRef without port attaches to every port of the Service (GEP-1294)
          get("/v1", V1, port=8080, extra=True),
          # Exact does not match a longer path; no rule matched on a Service with routes -> 404
          get("/v1/", status=404, extra=True),
          get("/v3", status=404, extra=True)]),

    Test("MeshHTTPRouteSimpleSameNamespace",
         "A producer route sends all traffic of echo:80 to echo-v1",
         ["Mesh", "HTTPRoute"], "httproute-simple-same-namespace.yaml",
         [get("/", V1),
          get("/some/path", V1, extra=True)]),

    Test("MeshHTTPRouteMatching",
         "PathPrefix (segment-wise) and header matches with precedence",
         ["Mesh", "HTTPRoute"], "httproute-matching.yaml",
         [get("/", V1),
          get("/example", V1),
          get("/", V1, headers={"version": "one"}),
          get("/v2", V2),
          get("/v2/", V2),
          get("/v2/example", V2),
          get("/", V2, headers={"version": "two"}),
          get("/v2example", V1),
          get("/foo/v2/example", V1),
          # a longer path prefix beats a match with more headers
          get("/v2", V2, headers={"version": "one"}, extra=True)]),

    Test("MeshHTTPRouteRedirectHostAndStatus",
         "RequestRedirect with hostname, and hostname plus statusCode",
         ["Mesh", "HTTPRoute"], "httproute-redirect-host-and-status.yaml",
         [redirect("/hostname-redirect", 302, "http://example.org/hostname-redirect"),
          redirect("/host-and-status", 301, "http://example.org/host-and-status")]),

    Test("MeshHTTPRouteRequestHeaderModifier",
         "Rule-level RequestHeaderModifier set/add/remove",
         ["Mesh", "HTTPRoute"], "httproute-request-header-modifier.yaml",
         _header_modifier_cases()),

    Test("MeshHTTPRouteWeight",
         "70/30 weighted backendRefs, balanced per request on one keep-alive connection",
         ["Mesh", "HTTPRoute"], "httproute-weight.yaml",
         [WeightCase("/", {V1: 70, V2: 30})]),

    Test("MeshHTTPRouteBackendRequestHeaderModifier",
         "backendRef-level RequestHeaderModifier set/add/remove",
         ["Mesh", "HTTPRoute", "MeshHTTPRouteBackendRequestHeaderModification"],
         "httproute-request-header-modifier-backend.yaml",
         _header_modifier_cases()),

    Test("MeshHTTPRouteQueryParamMatching",
         "queryParams matches, combined with path/header matches, precedence, 404 on no match",
         ["Mesh", "HTTPRoute", "MeshHTTPRouteQueryParamMatching"],
         "httproute-query-param-matching.yaml",
         [get("/?animal=whale", V1),
          get("/?animal=dolphin", V2),
          get("/?animal=whale&otherparam=irrelevant", V1),
          get("/?animal=dolphin&color=yellow", V2),
          get("/?color=blue", status=404),
          get("/?animal=dog", status=404),
          get("/?animal=whaledolphin", status=404),
          get("/path1?animal=whale", V1),
          get("/?animal=whale", V2, headers={"version": "one"}),
          get("/path3?animal=shark", V1),
          get("/path4?animal=kraken", V1, headers={"version": "three"}),
          get("/path4?animal=kraken", status=404),
          get("/path5?animal=hydra", V1),
          get("/?animal=hydra", V2),
          get("/path3?animal=kraken", status=404, extra=True)]),

    Test("MeshHTTPRouteRedirectPath",
         "RequestRedirect path ReplacePrefixMatch / ReplaceFullPath, with hostname and status",
         ["Mesh", "HTTPRoute", "MeshHTTPRouteRedirectPath"], "httproute-redirect-path.yaml",
         [redirect("/original-prefix/lemon", 302, "http://echo/replacement-prefix/lemon"),
          redirect("/full/path/original", 302, "http://echo/full-path-replacement"),
          redirect("/path-and-host", 302, "http://example.org/replacement-prefix"),
          redirect("/path-and-status", 301, "http://echo/replacement-prefix"),
          redirect("/full-path-and-host", 302, "http://example.org/replacement-full"),
          redirect("/full-path-and-status", 301, "http://echo/replacement-full"),
          # the ReplacePrefixMatch table: "/foo" -> "/xyz", "/foo/" -> "/xyz/"
          redirect("/original-prefix", 302, "http://echo/replacement-prefix", extra=True),
          redirect("/original-prefix/", 302, "http://echo/replacement-prefix/", extra=True)]),

    Test("MeshHTTPRouteRedirectPort",
         "RequestRedirect port, with hostname and status",
         ["Mesh", "HTTPRoute", "MeshHTTPRouteRedirectPort"], "httproute-redirect-port.yaml",
         [redirect("/port", 302, "http://echo:8083/port"),
          redirect("/port-and-host", 302, "http://example.org:8083/port-and-host"),
          redirect("/port-and-status", 301, "http://echo:8083/port-and-status"),
          redirect("/port-and-host-and-status", 302,
                   "http://example.org:8083/port-and-host-and-status")]),

    Test("MeshHTTPRouteSchemeRedirect",
         "RequestRedirect scheme https (port 443 implied, not written), with hostname and status",
         ["Mesh", "HTTPRoute", "MeshHTTPRouteSchemeRedirect"], "httproute-redirect-scheme.yaml",
         [redirect("/scheme", 302, "https://echo/scheme"),
          redirect("/scheme-and-host", 302, "https://example.org/scheme-and-host"),
          redirect("/scheme-and-status", 301, "https://echo/scheme-and-status"),
          redirect("/scheme-and-host-and-status", 302,
                   "https://example.org/scheme-and-host-and-status")]),

    Test("MeshHTTPRouteRewritePath",
         "URLRewrite path ReplacePrefixMatch / ReplaceFullPath, with header modifiers",
         ["Mesh", "HTTPRoute", "MeshHTTPRouteRewritePath"], "httproute-rewrite-path.yaml",
         [get("/prefix/one/two", V1, backend_url="/one/two"),
          get("/strip-prefix/three", V1, backend_url="/three"),
          get("/strip-prefix", V1, backend_url="/"),
          get("/full/one/two", V1, backend_url="/one"),
          get("/full/rewrite-path-and-modify-headers/test", V1, backend_url="/test",
              headers={"X-Header-Remove": "remove-val", "X-Header-Add-Append": "append-val-1"},
              req_headers={"X-Header-Set": "set-overwrites-values",
                           "X-Header-Add": "header-val-1",
                           "X-Header-Add-Append": "append-val-1,header-val-2"},
              absent_req_headers=["X-Header-Remove"]),
          get("/prefix/rewrite-path-and-modify-headers/one", V1, backend_url="/prefix/one",
              headers={"X-Header-Remove": "remove-val", "X-Header-Add-Append": "append-val-1"},
              req_headers={"X-Header-Set": "set-overwrites-values",
                           "X-Header-Add": "header-val-1",
                           "X-Header-Add-Append": "append-val-1,header-val-2"},
              absent_req_headers=["X-Header-Remove"]),
          # the ReplacePrefixMatch table: replacement "/" on "/foo/" gives "/"
          get("/strip-prefix/", V1, backend_url="/", extra=True),
          get("/prefix/one", V1, backend_url="/one", extra=True)]),

    Test("MeshHTTPRouteNamedRule",
         "Rules with and without a name both route",
         ["Mesh", "HTTPRoute", "MeshHTTPRouteNamedRouteRule"], "httproute-named-rule.yaml",
         [get("/named", V1),
          get("/unnamed", V2),
          get("/named/sub", V1, extra=True)]),

    Test("MeshConsumerRoute",
         "A consumer route applies to clients in its own namespace only",
         ["Mesh", "MeshConsumerRoute", "HTTPRoute", "HTTPRouteResponseHeaderModification"],
         "mesh-consumer-route.yaml",
         [get("/", V1, host="echo-v1." + MESH_NS, client="consumer",
              resp_headers={"X-Header-Set": "set"}),
          get("/", V1, host="echo-v1", absent_resp_headers=["X-Header-Set"]),
          # no port on the parentRef: every port of echo-v1
          get("/", V1, host="echo-v1." + MESH_NS, port=8080, client="consumer",
              resp_headers={"X-Header-Set": "set"}, extra=True),
          get("/", V2, host="echo-v2." + MESH_NS, client="consumer",
              absent_resp_headers=["X-Header-Set"], extra=True)]),

    Test("MeshFrontend",
         "Routes apply to traffic addressed to the Service frontend, not to a pod IP",
         ["Mesh", "HTTPRoute", "HTTPRouteResponseHeaderModification"], "mesh-frontend.yaml",
         [get("/", V2, host="echo-v2", resp_headers={"X-Header-Set": "set"}),
          get("/", V2, host=PodIP(MESH_NS, app="echo", version="v2"), port=8080,
              absent_resp_headers=["X-Header-Set"]),
          get("/", V2, host="echo-v2", port=8080, resp_headers={"X-Header-Set": "set"},
              extra=True)]),

    Test("MeshFrontendHostname",
         "Routes are chosen by the ClusterIP addressed, never by the Host header",
         ["Mesh", "MeshClusterIPMatching", "HTTPRoute", "HTTPRouteResponseHeaderModification"],
         "mesh-frontend.yaml",
         [get("/", V1, host="echo-v1", headers={"Host": "echo-v2"},
              absent_resp_headers=["X-Header-Set"]),
          get("/", V2, host="echo-v2", headers={"Host": "echo-v1"},
              resp_headers={"X-Header-Set": "set"}, extra=True)]),

    Test("MeshPorts",
         "parentRef port attaches to that Service port only; without port to all ports",
         ["Mesh", "HTTPRoute", "HTTPRouteParentRefPort", "HTTPRouteResponseHeaderModification"],
         "mesh-ports.yaml",
         [get("/", V1, host="echo-v1", resp_headers={"X-Header-Set": "v1"}),
          get("/", V1, host="echo-v1", port=8080, absent_resp_headers=["X-Header-Set"]),
          get("/", V2, host="echo-v2", resp_headers={"X-Header-Set": "v2"}),
          get("/", V2, host="echo-v2", port=8080, resp_headers={"X-Header-Set": "v2"})]),

    Test("MeshHTTPRoute303Redirect", "RequestRedirect statusCode 303",
         ["Mesh", "HTTPRoute", "HTTPRoute303RedirectStatusCode"], "httproute-303-redirect.yaml",
         _redirect_status_cases("/redirect", 303)),

    Test("MeshHTTPRoute307Redirect", "RequestRedirect statusCode 307",
         ["Mesh", "HTTPRoute", "HTTPRoute307RedirectStatusCode"], "httproute-307-redirect.yaml",
         _redirect_status_cases("/temporary", 307)),

    Test("MeshHTTPRoute308Redirect", "RequestRedirect statusCode 308",
         ["Mesh", "HTTPRoute", "HTTPRoute308RedirectStatusCode"], "httproute-308-redirect.yaml",
         _redirect_status_cases("/permanent", 308)),
]

BY_NAME = {t.name: t for t in TESTS}
