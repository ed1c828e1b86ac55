"""echo-client output and the harness's comparison rules. Pure functions, no lab.

echo-client prints, for request i:
    [i] StatusCode=N
    [i] ResponseHeader=Name:value        one line per header value, canonical names
    [i body] Key=value                   one line per non-empty body line
    [i] error=reason                     instead of all of the above when there was no response
The echo server's body has ServiceVersion=, ServicePort=, Host=, URL=, Method=, …,
RequestHeader=Name:value (one line per value), Hostname=<pod name>.
"""

import re

_LINE = re.compile(r"^\[(\d+)( body)?\] (.*)$")


class Response:
    """One request's outcome as echo-client reported it."""

    def __init__(self, index):
        self.index = index
        self.status = None          # int, or None when the client got no response
        self.error = None           # echo-client's error=… text
        self.resp_headers = []      # [(name, value)] in the order printed
        self.body = []              # body lines
        self.req_headers = []       # [(name, value)] from RequestHeader= lines
        self.fields = {}            # other Key=value body lines (last one wins)

    def field(self, key):
        return self.fields.get(key)

    @property
    def hostname(self):
        return self.fields.get("Hostname")

    @property
    def url(self):
        return self.fields.get("URL")

    def request_header(self, name):
        """All values of a request header the backend saw, joined with "," (no space), or None
        when it is absent. Names compare case-insensitively."""
        vals = [v for n, v in self.req_headers if n.lower() == name.lower()]
        return ",".join(vals) if vals else None

    def response_header(self, name):
        """The last value of a response header, or None when it is absent."""
        vals = [v for n, v in self.resp_headers if n.lower() == name.lower()]
        return vals[-1] if vals else None

    def describe(self):
        """A short summary for failure messages."""
        if self.status is None:
            return "no response (%s)" % (self.error or "no output")
        bits = ["status %d" % self.status]
        if self.hostname:
            bits.append("Hostname=%s" % self.hostname)
        if self.url is not None:
            bits.append("URL=%s" % self.url)
        loc = self.response_header("Location")
        if loc is not None:
            bits.append("Location=%s" % loc)
        return ", ".join(bits)


def parse(text):
    """echo-client stdout -> [Response] ordered by index. Unknown lines are ignored."""
    by_index = {}
    for raw in text.splitlines():
        m = _LINE.match(raw.rstrip("\r"))
        if not m:
            continue
        i = int(m.group(1))
        r = by_index.setdefault(i, Response(i))
        rest = m.group(3)
        if m.group(2):
            _body_line(r, rest)
        elif rest.startswith("StatusCode="):
            try:
                r.status = int(rest[len("StatusCode="):])
            except ValueError:
                r.error = "unparsable status line %r" % rest
        elif rest.startswith("ResponseHeader="):
            name, _, value = rest[len("ResponseHeader="):].partition(":")
            r.resp_headers.append((name, value))
        elif rest.startswith("error="):
            r.error = rest[len("error="):]
    return [by_index[i] for i in sorted(by_index)]


def _body_line(r, line):
    r.body.append(line)
    key, sep, value = line.partition("=")
    if not sep:
        return
    if key == "RequestHeader":
        name, _, hval = value.partition(":")
        r.req_headers.append((name, hval))
    else:
        r.fields[key] = value


def compare(exp, resp):
    """Differences between an expectation (a cases.Expect) and one Response, as a list of
    human-readable strings; empty means the response passes.

    The upstream harness's mesh rules: status in the expected list; expected request headers by
    name case-insensitively, all values joined with ","; absent request headers; response
    headers exact (last value wins); absent response headers; backend = the answering pod's
    Hostname starts with the expected name. On top of those (not checked upstream): the exact
    Location of a redirect and the exact request-URI the backend saw (URL=)."""
    if resp is None:
        return ["no response in the client output"]
    if resp.status is None:
        return ["no response: %s" % (resp.error or "echo-client printed nothing")]
    if resp.status not in exp.status:
        want = exp.status[0] if len(exp.status) == 1 else list(exp.status)
        return [" ".join(["status %d, want %s" % (resp.status, want)] + _context(resp))]
    diffs = []
    for name, want in exp.resp_headers:
        got = resp.response_header(name)
        if got != want:
            diffs.append("response header %s: %s, want %r" % (name, _show(got), want))
    for name in exp.absent_resp_headers:
        got = resp.response_header(name)
        if got is not None:
            diffs.append("response header %s should be absent, got %r" % (name, got))
    if exp.location is not None:
        got = resp.response_header("Location")
        if got != exp.location:
            diffs.append("Location %s, want %r" % (_show(got), exp.location))
    if exp.backend is not None or exp.req_headers or exp.absent_req_headers or exp.backend_url:
        diffs += _backend_diffs(exp, resp)
    return diffs


def _backend_diffs(exp, resp):
    diffs = []
    host = resp.hostname
    if host is None:
        return ["no Hostname= in the response body (not answered by an echo server?)"]
    if exp.backend is not None and not host.startswith(exp.backend):
        diffs.append("answered by %s, want a pod of %s" % (host, exp.backend))
    for name, want in exp.req_headers:
        got = resp.request_header(name)
        if got != want:
            diffs.append("backend saw request header %s: %s, want %r" % (name, _show(got), want))
    for name in exp.absent_req_headers:
        got = resp.request_header(name)
        if got is not None:
            diffs.append("backend saw request header %s: %r, want it absent" % (name, got))
    if exp.backend_url is not None and resp.url != exp.backend_url:
        diffs.append("backend saw URL %s, want %r" % (_show(resp.url), exp.backend_url))
    return diffs


def _context(resp):
    bits = []
    if resp.hostname:
        bits.append("(answered by %s)" % resp.hostname)
    loc = resp.response_header("Location")
    if loc is not None:
        bits.append("(Location: %s)" % loc)
    return bits


def _show(value):
    return "absent" if value is None else repr(value)


def distribution(responses, weights, tolerance):
    """Check a weighted split: every response 200 from a pod of one of the weighted backends,
    and each backend's share within +-tolerance of weight/sum(weights). Returns (diffs,
    counts)."""
    total_w = float(sum(weights.values()))
    counts = {name: 0 for name in weights}
    diffs = []
    bad = []
    for r in responses:
        if r.status != 200:
            bad.append("request %d: %s" % (r.index, r.describe()))
            continue
        owner = _owner(r.hostname or "", weights)
        if owner is None:
            bad.append("request %d: answered by %r, not a pod of %s"
                       % (r.index, r.hostname, "/".join(sorted(weights))))
            continue
        counts[owner] += 1
    if bad:
        diffs.append("%d of %d requests failed, first: %s" % (len(bad), len(responses), bad[0]))
        return diffs, counts
    n = len(responses)
    if n == 0:
        return ["no responses"], counts
    for name, w in sorted(weights.items()):
        want = w / total_w
        got = counts[name] / float(n)
        if abs(got - want) > tolerance + 1e-9:
            diffs.append("%s got %.1f%% (%d/%d), want %.0f%% +-%.0f"
                         % (name, 100 * got, counts[name], n, 100 * want, 100 * tolerance))
    return diffs, counts


def _owner(hostname, weights):
    """The weighted backend whose name is the longest prefix of hostname."""
    best = None
    for name in weights:
        if hostname.startswith(name) and (best is None or len(name) > len(best)):
            best = name
    return best
