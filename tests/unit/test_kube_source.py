"""The Kubernetes API configuration source (config-source=kubernetes) against a fake API server
on loopback (tests/lab/gmlab/kubeapi.py): list with pages, watch with bookmarks, resuming, 410
Gone and re-list, kinds that are not served, bad objects, bad credentials, a server that does
not verify, injected errors, SIGHUP, and a stop that does not wait for the API.

    /usr/bin/python3 -m pytest -v tests/unit/test_kube_source.py      (GM_BUILD_DIR=build)
"""
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("GM_BUILD_DIR", os.path.join(ROOT, "build"))
ZTUNNEL = os.path.join(BUILD, "ztunnel", "ztunnel")
WAYPOINT = os.path.join(BUILD, "waypoint", "waypoint")
sys.path.insert(0, os.path.join(ROOT, "tests", "lab"))
from gmlab.kubeapi import KubeAPI, make_certs  # noqa: E402

# as long as a projected service-account token (a JWT of about a kilobyte)
TOKEN = "eyJhbGciOiJSUzI1NiJ9." + "".join(random.choice("abcdefghijklmnopqrstuvwxyz0123456789")
                                          for _ in range(1200))


def ns(name, enrolled=True):
    labels = {"gammamesh.io/dataplane-mode": "ambient"} if enrolled else {}
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}


def pod(name, ip, namespace="app", app="b", ready=True):
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace, "labels": {"app": app},
                         "annotations": {"kubectl.kubernetes.io/last-applied-configuration":
                                         "{" + "x" * 1000 + "}"}},
            "spec": {"nodeName": "elsewhere", "serviceAccountName": "sa-" + app,
                     "containers": [{"name": "c", "ports": [{"name": "http",
                                                             "containerPort": 8080}]}],
                     "volumes": [{"name": "v", "emptyDir": {}}]},
            "status": {"podIP": ip, "conditions": [{"type": "Ready",
                                                    "status": "True" if ready else "False"}],
                       "containerStatuses": [{"name": "c", "ready": ready}]}}


def svc(name, vip, namespace="app", app="b"):
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name,
                                                              "namespace": namespace},
            "spec": {"clusterIP": vip, "selector": {"app": app},
                     "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}}


def route(name, namespace="app", parent="b", paths=("/v1",)):
    return {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"parentRefs": [{"group": "", "kind": "Service", "name": parent}],
                     "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": p}}
                                            for p in paths],
                                "backendRefs": [{"name": parent, "port": 80}]}]}}


def route_matches(dump, name):
    """How many matches of route `name` the snapshot's table of service b has."""
    for s in dump["snapshot"]["services"]:
        if s["name"] == "b":
            return sum(1 for m in s["ports"][0].get("producer_routes", []) if m["route"] == name)
    return 0


def endpoints(dump, name="b"):
    return [e["pod"] for s in dump["snapshot"]["services"] if s["name"] == name
            for e in s["endpoints"]]


def get(url, timeout=3):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError as e:
        return 0, str(e)


def wait_for(pred, timeout=10.0, step=0.05):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(step)
    return pred()


class Daemon:
    """A ztunnel (or waypoint) on the kubernetes source, its admin ports on loopback."""

    def __init__(self, tmp, api, prog=ZTUNNEL, token=TOKEN, ca=None, extra=(), url=None):
        self.tmp = tmp
        self.token_file = tmp / "token"
        self.token_file.write_text(token + "\n")
        low = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
        self.base = random.randint(10000, max(10001, low - 4))
        self.admin = "http://127.0.0.1:%d" % self.base
        self.ready_url = "http://127.0.0.1:%d/healthz/ready" % (self.base + 2)
        self.log = tmp / ("%s-%d.log" % (os.path.basename(prog), self.base))
        args = [prog, "--config-source", "kubernetes", "--kube-api", url or api.url,
                "--kube-token-file", str(self.token_file), "--kube-ca-file", ca or api.ca_cert,
                "--node-name", "n1", "--ca-cert", api.ca_cert,
                "--ca-key", os.path.join(api.workdir, "api-ca.key"),
                "--admin-addr", "127.0.0.1:%d" % self.base,
                "--metrics-addr", "127.0.0.1:%d" % (self.base + 1),
                "--ready-addr", "127.0.0.1:%d" % (self.base + 2), "--workers", "1"]
        args += ["--capture=false"] if prog == ZTUNNEL else ["--listen-addr", "127.0.0.1:0"]
        self.out = open(self.log, "w")
        self.p = subprocess.Popen(args + list(extra), stdout=self.out, stderr=subprocess.STDOUT)

    def dump(self):
        code, body = get(self.admin + "/config_dump")
        return json.loads(body) if code == 200 else None

    def ready(self):
        return get(self.ready_url)

    def workloads(self):
        d = self.dump()
        if not d or not d.get("snapshot"):
            return None
        return sorted(w["name"] for w in d["snapshot"]["workloads"])

    def logs(self):
        return self.log.read_text()

    def stop(self, sig=signal.SIGTERM):
        if self.p.poll() is None:
            self.p.send_signal(sig)
            try:
                self.p.wait(15)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self.out.close()
        return self.p.returncode


@pytest.fixture
def api(tmp_path):
    a = KubeAPI(str(tmp_path / "api"), token=TOKEN, bookmark_interval=0.5).start()
    a.apply(ns("app"))
    yield a
    a.stop()


@pytest.fixture
def daemons(tmp_path):
    started = []

    def start(*a, **kw):
        d = Daemon(tmp_path, *a, **kw)
        started.append(d)
        return d
    yield start
    problems = []
    for d in started:  # every daemon is stopped before anything is asserted
        rc = d.stop()
        if rc not in (0, 1):
            problems.append("exit status %s\n%s" % (rc, d.logs()[-3000:]))
        if "Sanitizer" in d.logs() or "runtime error:" in d.logs():
            problems.append(d.logs()[-3000:])
    assert not problems, "\n".join(problems)


def test_lists_in_pages_then_watches(api, daemons):
    api.page_limit_cap = 2  # seven pods in four pages
    for i in range(7):
        api.apply(pod("p%d" % i, "10.1.0.%d" % (i + 1)))
    api.apply(svc("b", "10.96.0.10"))
    z = daemons(api)
    assert wait_for(lambda: z.ready()[0] == 200), z.logs()
    assert z.workloads() == ["p%d" % i for i in range(7)], (z.workloads(), z.logs())
    d = z.dump()
    assert d["config_source"] == "kubernetes" and "config_dir" not in d
    pods = d["kubernetes"]["resources"]["pods"]
    assert pods["synced"] and pods["served"] and pods["lists"] == 1, (pods, z.logs())
    assert api.count(lambda r: "/pods?limit=500&continue=" in r[1]) == 3, api.requests
    # items of a core list carry no kind or apiVersion: the source sets them
    assert len(endpoints(d)) == 7, d["snapshot"]["services"]
    # every request carries the token; the watch asks for bookmarks and resumes from the list
    assert all(r[2] == "Bearer " + TOKEN for r in api.requests)
    assert wait_for(lambda: api.count(
        lambda r: "/pods?watch=1&allowWatchBookmarks=true" in r[1]) >= 1), api.requests[-5:]

    # changes arrive through the watch: add, modify (not ready: leaves the endpoints), delete
    api.apply(pod("p9", "10.1.0.99"))
    api.apply(pod("p3", "10.1.0.4", ready=False))
    api.delete("Pod", "app", "p0")
    assert wait_for(lambda: z.workloads() == ["p1", "p2", "p3", "p4", "p5", "p6", "p9"]), \
        z.workloads()
    assert wait_for(lambda: endpoints(z.dump()) == ["p1", "p2", "p4", "p5", "p6", "p9"]), \
        endpoints(z.dump())
    assert z.dump()["kubernetes"]["resources"]["pods"]["lists"] == 1  # no re-list needed

    # a change the daemon does not read (a container restart) arrives but builds nothing
    def settled():  # no snapshot built for half a second
        n = z.logs().count("snapshot built")
        time.sleep(0.5)
        return z.logs().count("snapshot built") == n
    assert wait_for(settled, 10)
    builds = z.logs().count("snapshot built")
    restarted = pod("p1", "10.1.0.2")
    restarted["status"]["containerStatuses"][0]["restartCount"] = 3
    api.apply(restarted)
    time.sleep(1)  # the open watch delivers it at once
    assert z.logs().count("snapshot built") == builds, z.logs()[-2000:]
    api.apply(pod("p1", "10.1.0.2", ready=False))  # while a change it reads builds one
    assert wait_for(lambda: z.logs().count("snapshot built") == builds + 1), z.logs()[-2000:]


def test_gone_relists_and_deletes_what_vanished(api, daemons):
    for i in range(3):
        api.apply(pod("p%d" % i, "10.1.0.%d" % (i + 1)))
    z = daemons(api)
    assert wait_for(lambda: z.workloads() == ["p0", "p1", "p2"]), z.logs()
    # While no watch is open (new ones are held), p1 goes and the history is compacted: the
    # resumed watch gets an ERROR 410, and the new list must show p1 gone (nobody sends its
    # DELETED any more).
    def gap(*changes):
        api.watch_gate.clear()
        api.drop_watches()
        for change in changes:
            change()
        api.compact()
        api.watch_gate.set()
    lists = lambda: z.dump()["kubernetes"]["resources"]["pods"]["lists"]  # noqa: E731
    gap(lambda: api.delete("Pod", "app", "p1"), lambda: api.apply(pod("p7", "10.1.0.7")))
    assert wait_for(lambda: z.workloads() == ["p0", "p2", "p7"]), (z.workloads(), z.logs())
    assert lists() == 2, z.dump()["kubernetes"]
    assert "resource version too old: listing again" in z.logs()
    # the same with 410 as the HTTP status of the watch
    api.gone_as_status = True
    gap(lambda: api.delete("Pod", "app", "p2"))
    assert wait_for(lambda: z.workloads() == ["p0", "p7"]), (z.workloads(), z.logs())
    assert lists() == 3, z.dump()["kubernetes"]


def test_not_served_kind_is_empty_and_sighup_lists_again(api, daemons):
    api.not_served.add("httproutes")
    api.apply(svc("b", "10.96.0.10"))
    z = daemons(api)
    assert wait_for(lambda: z.ready()[0] == 200), z.logs()
    hr = z.dump()["kubernetes"]["resources"]["httproutes"]
    assert hr["synced"] and not hr["served"]
    assert "not served by the API server" in z.logs()
    api.not_served.clear()
    api.apply(route("r1"))
    z.p.send_signal(signal.SIGHUP)
    assert wait_for(lambda: len(z.dump()["snapshot"]["routes"]) == 1), z.dump()["snapshot"]
    assert z.dump()["kubernetes"]["resources"]["httproutes"]["served"]


def test_bad_object_is_reported_and_keeps_its_last_good_version(api, daemons):
    api.apply(svc("b", "10.96.0.10"))
    api.apply(route("r1", paths=("/v1", "/v2")))
    z = daemons(api)
    assert wait_for(lambda: z.ready()[0] == 200), z.logs()
    assert route_matches(z.dump(), "r1") == 2
    api.apply(route("r1", paths=("no-slash",)))
    api.apply(route("r2", paths=("nope",)))

    def errors():
        return json.dumps(z.dump()["config_errors"])
    assert wait_for(lambda: "kube:httproutes/app/r1" in errors()), errors()
    assert "kube:httproutes/app/r2" in errors()
    text = z.logs()
    assert "configuration problem" in text and "kube:httproutes/app/r1" in text
    # r1's last good version (two matches) is still in effect; r2 never was good
    d = z.dump()
    assert route_matches(d, "r1") == 2 and route_matches(d, "r2") == 0
    api.apply(route("r1", paths=("/a", "/b", "/c")))
    api.delete("HTTPRoute", "app", "r2")
    assert wait_for(lambda: route_matches(z.dump(), "r1") == 3)
    assert wait_for(lambda: errors() == "[]"), errors()
    code, body = get("http://127.0.0.1:%d/metrics" % (z.base + 1))
    assert "gammamesh_config_load_errors_total 2" in body, body


def test_token_is_read_again_for_every_request(api, daemons, tmp_path):
    z = daemons(api, token="wrong")
    assert wait_for(lambda: "HTTP 401" in z.ready()[1], 10), (z.ready(), z.logs())
    assert z.ready()[0] == 503
    assert "waiting for the Kubernetes API" in z.ready()[1]
    assert "list failed" in z.logs()
    z.token_file.write_text(TOKEN)  # the kubelet rotates a projected token like this
    assert wait_for(lambda: z.ready()[0] == 200, 40), (z.ready(), z.logs())


def test_server_certificate_must_verify(api, daemons, tmp_path):
    other_ca, _, _ = make_certs(str(tmp_path / "other"))
    z = daemons(api, ca=other_ca)
    assert wait_for(lambda: "certificate" in z.ready()[1], 10), z.ready()
    assert z.ready()[0] == 503 and "unable to get local issuer certificate" in z.ready()[1]
    # the right CA but a name the certificate does not carry (it has IP:127.0.0.1 only)
    z2 = daemons(api, url="https://localhost:%d" % api.port)
    assert wait_for(lambda: "certificate" in z2.ready()[1], 10), z2.ready()
    assert z2.ready()[0] == 503 and "mismatch" in z2.ready()[1], z2.ready()


def test_injected_errors_back_off_and_recover(api, daemons):
    api.fail["pods"] = [500, 503, 500]
    api.apply(pod("p0", "10.1.0.1"))
    z = daemons(api)
    assert wait_for(lambda: z.ready()[0] == 200, 20), (z.ready(), z.logs())
    pods = z.dump()["kubernetes"]["resources"]["pods"]
    assert pods["errors"] == 3 and pods["last_error"] is None, pods
    assert "injected failure 500" in z.logs()
    assert z.workloads() == ["p0"]
    metrics = lambda: get("http://127.0.0.1:%d/metrics" % (z.base + 1))[1]  # noqa: E731
    assert wait_for(lambda: 'gammamesh_kube_synced{resource="pods"} 1' in metrics())
    m = metrics()
    assert 'gammamesh_kube_request_errors_total{resource="pods"} 3' in m, m
    assert 'gammamesh_kube_lists_total{resource="pods"} 4' in m, m  # three failed, one good
    assert 'gammamesh_kube_request_errors_total{resource="services"}' not in m or \
        'gammamesh_kube_request_errors_total{resource="services"} 0' in m, m


def test_hostile_server_answers_are_refused_and_the_source_recovers(api, daemons):
    """Whatever the server sends, the daemon names the problem, backs off, and carries on: a
    later change still arrives."""
    z = daemons(api)
    assert wait_for(lambda: z.ready()[0] == 200), z.logs()
    n = [0]

    def survives(what, expect, setup):
        before = z.logs().count(expect)
        setup()
        n[0] += 1
        api.drop_watches()
        name = "q%d" % n[0]
        api.apply(pod(name, "10.2.0.%d" % n[0]))
        assert wait_for(lambda: name in (z.workloads() or []), 15), (what, z.logs()[-3000:])
        assert wait_for(lambda: z.logs().count(expect) > before, 5), (what, expect,
                                                                       z.logs()[-3000:])
        assert z.p.poll() is None, what

    def watch_starts_with(data):
        return lambda: api.watch_prefix.update(pods=data)

    def answer_raw(data, relist=False):
        def setup():
            api.raw_next["pods"] = data
            if relist:  # SIGHUP lists again: the next pods request is a list
                z.p.send_signal(signal.SIGHUP)
        return setup

    survives("a watch line that is not JSON", "watch event that is not one",
             watch_starts_with(b"this is not json\n"))
    survives("an event without an object", "no type or object",
             watch_starts_with(b'{"type": "ADDED"}\n'))
    survives("a watch ERROR that is not 410", "watch error 500: boom",
             watch_starts_with(b'{"type": "ERROR", "object": {"code": 500, "message": "boom"}}\n'))
    survives("an event line over 32 MiB", "watch event larger than 32 MiB",
             watch_starts_with(b"x" * (33 << 20)))
    survives("an answer that is not HTTP", "bad HTTP response",
             answer_raw(b"SSH-2.0-OpenSSH_9.2\r\n"))
    survives("a broken chunked body", "bad HTTP response",
             answer_raw(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                        b"zz\r\nnot a chunk size\r\n"))
    survives("a list that is not JSON", "the list is not a list",
             answer_raw(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", relist=True))
    survives("a list cut short", "closed the connection mid-response",
             answer_raw(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"items\"",
                        relist=True))
    pods = z.dump()["kubernetes"]["resources"]["pods"]
    assert pods["errors"] >= 8, pods


def waypoint_world(api):
    """Namespace app with a waypoint Gateway "wp", its Pod wp-0, Service b served by it and
    Service c served by none."""
    api.apply({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
               "metadata": {"name": "wp", "namespace": "app"},
               "spec": {"gatewayClassName": "gammamesh-waypoint",
                        "listeners": [{"name": "mesh", "port": 15008, "protocol": "HBONE"}]}})
    wp = pod("wp-0", "10.1.0.50", app="wp")
    wp["metadata"]["labels"]["gateway.networking.k8s.io/gateway-name"] = "wp"
    api.apply(wp)
    b = svc("b", "10.96.0.10")
    b["metadata"]["labels"] = {"gammamesh.io/use-waypoint": "wp"}
    api.apply(b)
    api.apply(svc("c", "10.96.0.11", app="c"))
    api.apply(pod("p0", "10.1.0.1"))


def our_status(api, name):
    r = api.get("HTTPRoute", "app", name)
    return [p for p in ((r or {}).get("status") or {}).get("parents", [])
            if p.get("controllerName") == "gammamesh.io/mesh-controller"]


def conditions(entry):
    return {c["type"]: c for c in entry["conditions"]}


def test_waypoint_writes_route_status(api, daemons):
    waypoint_world(api)
    other = {"parentRef": {"group": "", "kind": "Service", "name": "b"},
             "controllerName": "example.com/other-mesh",
             "conditions": [{"type": "Accepted", "status": "True", "reason": "Accepted",
                             "message": "theirs", "lastTransitionTime": "2020-01-01T00:00:00Z"}]}
    r1 = route("r1")
    r1["status"] = {"parents": [other]}
    api.apply(r1)
    api.apply(route("r2", paths=("/missing",)))
    api.objects["httproutes"][("app", "r2")]["spec"]["rules"][0]["backendRefs"] = [
        {"name": "nope", "port": 80}]
    r3 = route("r3")
    r3["spec"]["parentRefs"][0]["port"] = 81
    api.apply(r3)
    r4 = route("r4")
    r4["spec"]["rules"][0]["matches"] = [{"path": {"type": "RegularExpression", "value": "(("}}]
    api.apply(r4)
    r5 = route("r5", parent="c")
    api.apply(r5)
    w = daemons(api, prog=WAYPOINT, extra=("--pod-name", "wp-0", "--pod-namespace", "app"))
    assert wait_for(lambda: all(our_status(api, n) for n in ("r1", "r2", "r3", "r4")), 15), \
        (api.status_puts, w.logs()[-3000:])
    (e1,) = our_status(api, "r1")
    c1 = conditions(e1)
    assert e1["parentRef"] == {"group": "", "kind": "Service", "namespace": "app", "name": "b"}
    assert c1["Accepted"]["status"] == "True" and c1["Accepted"]["reason"] == "Accepted"
    assert c1["ResolvedRefs"]["status"] == "True", c1
    assert c1["Accepted"]["observedGeneration"] == 1
    assert other in api.get("HTTPRoute", "app", "r1")["status"]["parents"], "theirs is kept"
    c2 = conditions(our_status(api, "r2")[0])
    assert c2["Accepted"]["status"] == "True" and c2["ResolvedRefs"]["status"] == "False"
    assert c2["ResolvedRefs"]["reason"] == "BackendNotFound", c2
    c3 = conditions(our_status(api, "r3")[0])
    assert c3["Accepted"]["status"] == "False" and c3["Accepted"]["reason"] == "NoMatchingParent"
    c4 = conditions(our_status(api, "r4")[0])
    assert c4["Accepted"]["status"] == "False" and c4["Accepted"]["reason"] == "UnsupportedValue"
    assert "regular expression" in c4["Accepted"]["message"], c4
    assert our_status(api, "r5") == [], "Service c has no waypoint: not ours to say"

    # nothing is written again while nothing changes (our own writes come back as events)
    time.sleep(1.5)
    puts = len(api.status_puts)
    time.sleep(1.5)
    assert len(api.status_puts) == puts, api.status_puts[puts:]
    # a new generation of r1: observedGeneration follows, the transition time does not
    t0 = c1["Accepted"]["lastTransitionTime"]
    api.conflict_next = 1  # and the first write meets a conflict
    api.apply(route("r1", paths=("/v1", "/v9")))
    assert wait_for(lambda: conditions(our_status(api, "r1")[0])["Accepted"]
                    ["observedGeneration"] == 2, 15), api.status_puts[-3:]
    c1 = conditions(our_status(api, "r1")[0])
    assert c1["Accepted"]["lastTransitionTime"] == t0 and c1["Accepted"]["status"] == "True"
    assert other in api.get("HTTPRoute", "app", "r1")["status"]["parents"]
    rs = w.dump()["kubernetes"]["route_status"]
    assert rs["writes"] >= 5 and rs["last_error"] is None, rs


def test_stop_does_not_wait_for_a_silent_server(tmp_path, daemons, api):
    # a TCP listener that never speaks TLS: every request hangs in the handshake
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(64)
    try:
        z = daemons(api, url="https://127.0.0.1:%d" % s.getsockname()[1])
        assert wait_for(lambda: z.ready()[0] == 503, 10)
        time.sleep(0.5)
        t = time.monotonic()
        rc = z.stop()
        assert rc == 0 and time.monotonic() - t < 3, (rc, z.logs())
    finally:
        s.close()


def test_unusable_api_address_exits_with_a_reason(tmp_path, api):
    for url, why in (("http://127.0.0.1:1", "only https:// is supported"),
                     ("https://[::1", "expected https://HOST[:PORT]")):
        r = subprocess.run([ZTUNNEL, "--config-source", "kubernetes", "--kube-api", url,
                            "--capture=false", "--node-name", "n1", "--admin-addr", "",
                            "--metrics-addr", "", "--ready-addr", "", "--ca-cert", api.ca_cert,
                            "--ca-key", os.path.join(api.workdir, "api-ca.key")],
                           capture_output=True, text=True, timeout=20)
        assert r.returncode == 1 and why in r.stdout + r.stderr, (url, r.stdout, r.stderr)
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBERNETES_")}
    r = subprocess.run([ZTUNNEL, "--config-source", "kubernetes", "--capture=false",
                        "--admin-addr", "", "--metrics-addr", "", "--ready-addr", "",
                        "--ca-cert", api.ca_cert, "--ca-key", os.path.join(api.workdir,
                                                                           "api-ca.key")],
                       capture_output=True, text=True, timeout=20, env=env)
    assert r.returncode == 1 and "KUBERNETES_SERVICE_HOST is not set" in r.stdout + r.stderr


def test_in_cluster_environment_is_used(api, daemons, monkeypatch):
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", str(api.port))
    z = daemons(api, url="")
    assert wait_for(lambda: z.ready()[0] == 200), (z.ready(), z.logs())
    assert z.dump()["kubernetes"]["api"] == "127.0.0.1:%d" % api.port


def test_waypoint_reads_the_api_too(api, daemons):
    api.apply(svc("b", "10.96.0.10"))
    api.apply(route("r1"))
    w = daemons(api, prog=WAYPOINT)
    assert wait_for(lambda: (w.dump() or {}).get("snapshot") is not None), w.logs()
    d = w.dump()
    assert d["config_source"] == "kubernetes"
    assert route_matches(d, "r1") == 1
