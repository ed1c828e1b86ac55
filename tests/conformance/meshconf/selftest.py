"""--self-test: the checker tested without a lab.

- the comparison rules against canned echo-client outputs (each rule must reject what it is
  meant to reject, not only accept good output);
- the weighted-split check at and beyond its tolerance;
- the convergence rules (3 passes in a row within the timeout; weight runs) with a fake clock;
- the case definitions: every test issue 4 names is present, profile levels, manifests exist,
  and every expectation agrees with an independent model of the spec evaluated on the
  manifests (meshconf/model.py);
- the report: statistics and results, and the YAML read back by the lab's YAML reader.
"""

import os
import sys
import traceback

from . import cases, echo, model, report, runner

ISSUE_TESTS = [
    "MeshBasic", "MeshTrafficSplit", "MeshHTTPRouteSimpleSameNamespace", "MeshHTTPRouteMatching",
    "MeshHTTPRouteRedirectHostAndStatus", "MeshHTTPRouteRequestHeaderModifier",
    "MeshHTTPRouteWeight", "MeshHTTPRouteBackendRequestHeaderModifier",
    "MeshHTTPRouteQueryParamMatching", "MeshHTTPRouteRedirectPath", "MeshHTTPRouteRedirectPort",
    "MeshHTTPRouteSchemeRedirect", "MeshHTTPRouteRewritePath", "MeshHTTPRouteNamedRule",
    "MeshConsumerRoute", "MeshFrontend", "MeshFrontendHostname", "MeshPorts",
    "MeshHTTPRoute303Redirect", "MeshHTTPRoute307Redirect", "MeshHTTPRoute308Redirect",
]
CORE = ISSUE_TESTS[:7]
EXTENDED = ISSUE_TESTS[7:14]

OK_BODY = """[0] StatusCode=200
[0] ResponseHeader=Content-Length:251
[0] ResponseHeader=Content-Type:text/plain
[0] ResponseHeader=X-Header-Set:old
[0] ResponseHeader=X-Header-Set:set
[0 body] ServiceVersion=v1
[0 body] ServicePort=8080
[0 body] Host=echo
[0 body] URL=/one/two?x=1
[0 body] Method=GET
[0 body] Proto=HTTP/1.1
[0 body] RequestHeader=Another-Header:another-header-val
[0 body] RequestHeader=User-Agent:gammamesh-echo-client
[0 body] RequestHeader=X-Header-Add:original-val-add
[0 body] RequestHeader=X-Header-Add:header-add
[0 body] RequestHeader=X-Header-Set:header-set
[0 body] Hostname=echo-v1-8vj8xcndl7-jkd5k
"""

REDIRECT = """[0] StatusCode=301
[0] ResponseHeader=Content-Length:0
[0] ResponseHeader=Location:http://example.org/replacement-prefix
"""

CHECKS = []


def check(fn):
    CHECKS.append(fn)
    return fn


def expect_diff(exp, out, *needles):
    """compare() must fail, and mention every needle."""
    diffs = echo.compare(exp, (echo.parse(out) or [None])[0])
    assert diffs, "expected a difference, got a pass"
    text = "; ".join(diffs)
    for n in needles:
        assert n in text, "%r not in %r" % (n, text)


def expect_pass(exp, out):
    diffs = echo.compare(exp, (echo.parse(out) or [None])[0])
    assert not diffs, diffs


# ---------------------------------------------------------------------------------------------
# comparison rules

@check
def parse_fields():
    [r] = echo.parse(OK_BODY)
    assert r.status == 200 and r.hostname == "echo-v1-8vj8xcndl7-jkd5k", r.describe()
    assert r.url == "/one/two?x=1"
    assert r.request_header("x-header-add") == "original-val-add,header-add"
    assert r.response_header("x-header-set") == "set"      # last value wins
    assert echo.parse("garbage\n\n[x] nope\n") == []
    rs = echo.parse("[0] StatusCode=200\n[1] error=connect: Connection refused\n")
    assert [x.status for x in rs] == [200, None] and "refused" in rs[1].describe()


@check
def request_headers_joined_without_space():
    E = cases.Expect
    expect_pass(E(200, "echo-v1", req_headers={"x-header-add": "original-val-add,header-add"}),
                OK_BODY)
    expect_diff(E(200, "echo-v1", req_headers={"X-Header-Add": "original-val-add, header-add"}),
                OK_BODY, "X-Header-Add")
    expect_diff(E(200, "echo-v1", req_headers={"X-Header-Add": "header-add"}), OK_BODY,
                "original-val-add,header-add")
    expect_diff(E(200, "echo-v1", req_headers={"X-Missing": "v"}), OK_BODY, "X-Missing",
                "absent")


@check
def absent_request_headers():
    E = cases.Expect
    expect_pass(E(200, "echo-v1", absent_req_headers=["X-Header-Remove"]), OK_BODY)
    expect_diff(E(200, "echo-v1", absent_req_headers=["x-header-set"]), OK_BODY,
                "x-header-set", "absent")


@check
def response_headers():
    E = cases.Expect
    expect_pass(E(200, resp_headers={"X-HEADER-SET": "set"}), OK_BODY)
    expect_diff(E(200, resp_headers={"X-Header-Set": "old"}), OK_BODY, "X-Header-Set")
    expect_diff(E(200, absent_resp_headers=["x-header-set"]), OK_BODY, "should be absent")
    expect_pass(E(200, absent_resp_headers=["X-Other"]), OK_BODY)


@check
def backend_by_hostname_prefix():
    E = cases.Expect
    expect_pass(E(200, "echo"), OK_BODY)
    expect_pass(E(200, "echo-v1"), OK_BODY)
    expect_diff(E(200, "echo-v2"), OK_BODY, "echo-v1-8vj8xcndl7-jkd5k", "echo-v2")
    no_host = "\n".join(line for line in OK_BODY.splitlines() if "Hostname" not in line)
    expect_diff(E(200, "echo-v1"), no_host, "no Hostname")


@check
def status_codes():
    E = cases.Expect
    expect_diff(E(404), OK_BODY, "status 200, want 404", "echo-v1-8vj8xcndl7-jkd5k")
    expect_pass(E((200, 404)), OK_BODY)
    expect_diff(E(200, "echo-v1"), "[0] error=read: Connection reset by peer\n", "no response",
                "reset")
    expect_diff(E(200), "", "no response")


@check
def redirect_location_exact():
    E = cases.Expect
    expect_pass(E(301, location="http://example.org/replacement-prefix"), REDIRECT)
    expect_diff(E(302, location="http://example.org/replacement-prefix"), REDIRECT,
                "status 301, want 302")
    for bad in ("http://example.org:80/replacement-prefix",
                "http://example.org/replacement-prefix/",
                "https://example.org/replacement-prefix", "http://echo/replacement-prefix"):
        expect_diff(E(301, location=bad), REDIRECT, "Location")
    expect_diff(E(301, location="http://x/"), "[0] StatusCode=301\n", "Location absent")


@check
def backend_url_exact():
    E = cases.Expect
    expect_pass(E(200, "echo-v1", backend_url="/one/two?x=1"), OK_BODY)
    expect_diff(E(200, "echo-v1", backend_url="/one/two"), OK_BODY, "URL", "/one/two?x=1")


# ---------------------------------------------------------------------------------------------
# weights

def _split_output(v1, v2, extra=""):
    out, i = [], 0
    for name, n in (("echo-v1-a-b", v1), ("echo-v2-c-d", v2)):
        for _ in range(n):
            out.append("[%d] StatusCode=200\n[%d body] Hostname=%s\n" % (i, i, name))
            i += 1
    return "".join(out) + extra


@check
def weight_distribution():
    w = {"echo-v1": 70, "echo-v2": 30}
    ok = lambda v1, v2: not echo.distribution(echo.parse(_split_output(v1, v2)), w, 0.05)[0]
    assert ok(350, 150)
    assert ok(375, 125) and ok(325, 175)            # exactly +-5 points
    assert not ok(376, 124) and not ok(324, 176)
    assert not ok(500, 0)                           # per-connection balancing: all on one pod
    bad = _split_output(349, 150, "[499] StatusCode=503\n")
    diffs, _ = echo.distribution(echo.parse(bad), w, 0.05)
    assert diffs and "503" in diffs[0], diffs
    stray = _split_output(350, 149, "[499] StatusCode=200\n[499 body] Hostname=other-pod\n")
    diffs, _ = echo.distribution(echo.parse(stray), w, 0.05)
    assert diffs and "other-pod" in diffs[0], diffs
    case = cases.WeightCase("/", w)
    assert runner.evaluate(case, 0, _split_output(350, 150), "") == []
    assert runner.evaluate(case, 1, _split_output(300, 100), "")      # responses missing


# ---------------------------------------------------------------------------------------------
# convergence rules

class FakeClock:
    def __init__(self, step):
        self.t, self.step = 0.0, step

    def now(self):
        return self.t

    def sleep(self, s):
        self.t += s


def _scripted(results, clock, exp_status=200):
    """A sender returning passing (True) or failing (False) outputs in order, then the last."""
    seq = list(results)

    def send(case):
        clock.t += clock.step
        good = seq.pop(0) if len(seq) > 1 else seq[0]
        return 0, "[0] StatusCode=%d\n" % (exp_status if good else 500), ""
    return send


@check
def three_in_a_row():
    case = cases.get("/", None)
    clk = FakeClock(0.05)
    r = runner.run_case(case, _scripted([True], clk), clk)
    assert r.passed and r.attempts == 3, (r.passed, r.attempts)
    clk = FakeClock(0.05)
    r = runner.run_case(case, _scripted([True, True, False, True, True, True], clk), clk)
    assert r.passed and r.attempts == 6 and r.passes == 5, (r.attempts, r.passes)
    clk = FakeClock(0.05)
    r = runner.run_case(case, _scripted([True, True, False] * 1000, clk), clk)
    assert not r.passed and r.best_streak == 2 and "status 500" in r.detail(), r.detail()
    clk = FakeClock(0.05)
    r = runner.run_case(case, _scripted([False], clk), clk)
    assert not r.passed and 29.9 <= r.seconds <= 30.3, r.seconds
    assert 199 <= r.attempts <= 201, r.attempts     # 0.05 s per request + 0.1 s pause
    clk = FakeClock(1.0)
    r = runner.run_case(case, _scripted([False] * 5 + [True], clk), clk, timeout=30)
    assert r.passed and r.attempts == 8, r.attempts


@check
def weight_attempts():
    w = cases.WeightCase("/", {"echo-v1": 70, "echo-v2": 30})
    outs = [_split_output(500, 0), _split_output(350, 150)]
    clk = FakeClock(1.0)

    def send(case):
        clk.t += 1
        return 0, outs.pop(0) if len(outs) > 1 else outs[0], ""
    r = runner.run_case(w, send, clk)
    assert r.passed and r.attempts == 2, (r.passed, r.attempts)
    clk = FakeClock(1.0)
    r = runner.run_case(w, lambda c: (0, _split_output(500, 0), ""), clk)
    assert not r.passed and r.attempts == runner.WEIGHT_ATTEMPTS, r.attempts
    assert "echo-v1 got 100.0%" in r.detail(), r.detail()


# ---------------------------------------------------------------------------------------------
# case definitions against the spec model

@check
def tests_and_levels():
    names = [t.name for t in cases.TESTS]
    assert names == ISSUE_TESTS, names
    assert [t.name for t in cases.TESTS if t.level == "core"] == CORE
    assert [t.name for t in cases.TESTS if t.level == "extended"] == EXTENDED
    for t in cases.TESTS:
        assert t.cases, t.name
        assert len({c.name for c in t.cases}) == len(t.cases), "duplicate case in " + t.name
        assert any(not c.extra for c in t.cases), t.name + " has only extra cases"


def _manifest_dir(args):
    return os.path.realpath(args.manifests)


def _load_yaml():
    lab = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.realpath(__file__)))), "lab")
    if lab not in sys.path:
        sys.path.insert(0, lab)
    from gmlab import yamlish
    return yamlish


def _routes(args, test):
    if not test.manifest:
        return []
    path = os.path.join(_manifest_dir(args), test.manifest)
    with open(path) as f:
        docs = [d for _, d in _load_yaml().load_all(f.read(), path)]
    return model.routes_of(docs)


def _agree(case, out):
    e = case.expect
    problems = []
    if case.weight:
        if out.weights != case.weights:
            problems.append("weights %s, model %s" % (case.weights, out.weights))
        return problems
    if e.status != (out.status,):
        problems.append("status %s, model %s" % (e.status, out.status))
        return problems
    if out.status == 200 and e.backend != out.backend:
        problems.append("backend %s, model %s" % (e.backend, out.backend))
    if 300 <= out.status < 400 and e.location != out.location:
        problems.append("Location %s, model %s" % (e.location, out.location))
    if e.backend_url is not None and e.backend_url != out.url:
        problems.append("URL %s, model %s" % (e.backend_url, out.url))
    for n, v in e.req_headers:
        if out.req_header(n) != v:
            problems.append("request header %s=%r, model %r" % (n, v, out.req_header(n)))
    for n in e.absent_req_headers:
        if out.req_header(n) is not None:
            problems.append("request header %s absent, model %r" % (n, out.req_header(n)))
    for n, v in e.resp_headers:
        if out.resp_header(n) != v:
            problems.append("response header %s=%r, model %r" % (n, v, out.resp_header(n)))
    for n in e.absent_resp_headers:
        if out.resp_header(n) is not None:
            problems.append("response header %s absent, model %r" % (n, out.resp_header(n)))
    return problems


def make_model_mutation_check(args):
    def model_rejects_wrong_expectations():
        t = cases.BY_NAME
        wrong = [
            ("MeshHTTPRouteMatching", cases.get("/v2example", "echo-v2")),
            ("MeshHTTPRouteQueryParamMatching",
             cases.get("/?animal=whale", "echo-v1", headers={"version": "one"})),
            ("MeshHTTPRouteRedirectPort", cases.redirect("/port", 302, "http://echo/port")),
            ("MeshHTTPRouteSchemeRedirect",
             cases.redirect("/scheme", 302, "https://echo:443/scheme")),
            ("MeshHTTPRouteRewritePath", cases.get("/strip-prefix/three", "echo-v1",
                                                   backend_url="//three")),
            ("MeshHTTPRouteRequestHeaderModifier",
             cases.get("/add", "echo-v1", headers={"X-Header-Add": "a"},
                       req_headers={"X-Header-Add": "add-appends-values"})),
            ("MeshConsumerRoute", cases.get("/", "echo-v1", host="echo-v1",
                                            resp_headers={"X-Header-Set": "set"})),
            ("MeshFrontendHostname", cases.get("/", "echo-v1", host="echo-v1",
                                               headers={"Host": "echo-v2"},
                                               resp_headers={"X-Header-Set": "set"})),
            ("MeshPorts", cases.get("/", "echo-v1", host="echo-v1", port=8080,
                                    resp_headers={"X-Header-Set": "v1"})),
            ("MeshTrafficSplit", cases.get("/v1/", "echo-v1")),
        ]
        for name, case in wrong:
            out = model.evaluate(case, _routes(args, t[name]))
            assert _agree(case, out), "%s: model accepted wrong %s" % (name, case.name)
    return model_rejects_wrong_expectations


def make_model_check(args):
    def cases_agree_with_spec_model():
        problems = []
        for t in cases.TESTS:
            routes = _routes(args, t)
            for c in t.cases:
                problems += ["%s: %s: %s" % (t.name, c.name, p)
                             for p in _agree(c, model.evaluate(c, routes))]
        assert not problems, "\n    ".join([""] + problems)
    return cases_agree_with_spec_model


@check
def replace_prefix_table():
    rp = model.replace_prefix
    table = [("/foo/bar", "/foo", "/xyz", "/xyz/bar"), ("/foo/bar", "/foo", "/xyz/", "/xyz/bar"),
             ("/foo/bar", "/foo/", "/xyz", "/xyz/bar"), ("/foo/bar", "/foo/", "/xyz/", "/xyz/bar"),
             ("/foo", "/foo", "/xyz", "/xyz"), ("/foo/", "/foo", "/xyz", "/xyz/"),
             ("/foo/bar", "/foo", "", "/bar"), ("/foo/", "/foo", "", "/"),
             ("/foo", "/foo", "", "/"),
             ("/foo/", "/foo", "/", "/"), ("/foo", "/foo", "/", "/")]
    for path, prefix, repl, want in table:
        got = rp(path, prefix, repl)
        assert got == want, "%s %s->%s: %s, want %s" % (path, prefix, repl, got, want)


# ---------------------------------------------------------------------------------------------
# report

@check
def report_statistics_and_yaml():
    results = {}
    for i, t in enumerate(cases.TESTS):
        tr = runner.TestResult(t)
        tr.result = "failed" if t.name in ("MeshHTTPRouteWeight", "MeshPorts") else "passed"
        if t.name == "MeshHTTPRouteNamedRule":
            tr.result = "skipped"
        results[t.name] = tr
    impl = {"organization": "gammamesh", "project": "gammamesh", "url": "https://example.org/x",
            "version": "v0.1.0", "contact": ["@a: b"]}
    rep = report.build(results, impl)
    prof = rep["profiles"][0]
    assert prof["name"] == "MESH-HTTP"
    assert prof["core"]["result"] == "failure" and prof["core"]["failedTests"] == [
        "MeshHTTPRouteWeight"]
    assert prof["core"]["statistics"] == {"Failed": 1, "Passed": 6, "Skipped": 0}
    assert prof["extended"]["result"] == "partial"
    assert prof["extended"]["statistics"] == {"Failed": 0, "Passed": 6, "Skipped": 1}
    assert "MeshConsumerRoute" in prof["extended"]["supportedFeatures"]
    assert rep["otherTests"]["statistics"] == {"Failed": 1, "Passed": 6, "Skipped": 0}
    text = report.to_yaml(rep)
    [(_, back)] = _load_yaml().load_all(text)
    assert back == rep, "YAML round trip differs:\n" + text
    assert text.startswith("apiVersion: gateway.networking.k8s.io/v1\nkind: ConformanceReport\n")
    allpass = {t.name: runner.TestResult(t) for t in cases.TESTS}
    for tr in allpass.values():
        tr.result = "passed"
    rep = report.build(allpass, impl)
    assert rep["profiles"][0]["summary"] == "Core tests succeeded. Extended tests succeeded."
    assert "failedTests" not in rep["profiles"][0]["core"]


@check
def table_format():
    t = report.table([("MeshBasic", "passed", 1.25, ""), ("MeshPorts", "failed", 30.0, "x" * 200)])
    lines = t.splitlines()
    assert lines[0].split() == ["TEST", "RESULT", "SECONDS", "FAILURE"]
    assert "1.2" in lines[1] or "1.3" in lines[1]
    assert lines[2].endswith("...") and len(lines[2]) < 160


def main(args):
    checks = list(CHECKS)
    mdir = _manifest_dir(args)
    if os.path.isdir(mdir):
        checks.append(make_model_check(args))
        checks.append(make_model_mutation_check(args))
    else:
        print("self-test: manifests not found in %s: the model cross-check fails" % mdir)
        checks.append(lambda: (_ for _ in ()).throw(AssertionError("no manifests in " + mdir)))
    failed = 0
    for fn in checks:
        name = getattr(fn, "__name__", "check")
        try:
            fn()
        except Exception:      # noqa: BLE001 - report every failing check, then fail
            failed += 1
            print("FAIL %s" % name)
            print("    " + traceback.format_exc().strip().replace("\n", "\n    "))
        else:
            print("ok   %s" % name)
    print("self-test: %d passed, %d failed" % (len(checks) - failed, failed))
    return 1 if failed else 0
