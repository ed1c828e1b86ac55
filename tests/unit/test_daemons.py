#!/usr/bin/python3
"""The two daemons as an operator meets them, without root: `--check` on every conformance
manifest (with the base manifests) and on broken input, usage errors, and a running daemon's
admin endpoints and directory watch (a change applied within a second, a broken file keeping
its last good content, errors counted in /metrics and shown in /config_dump, /logging,
/quitquitquit). Usage: test_daemons.py BUILD_DIR CONFORMANCE_MANIFESTS_DIR"""
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

BUILD, MANIFESTS = sys.argv[1], sys.argv[2]
ZTUNNEL = os.path.join(BUILD, "ztunnel", "ztunnel")
WAYPOINT = os.path.join(BUILD, "waypoint", "waypoint")
failures = []
checks = 0


def check(cond, what):
    global checks
    checks += 1
    if not cond:
        failures.append(what)
        print("FAIL:", what, file=sys.stderr)


def manifests_dir():
    for d in (os.environ.get("GM_CONFORMANCE_MANIFESTS"), MANIFESTS):
        if d and os.path.isfile(os.path.join(d, "manifests.yaml")):
            return d
    return None


def run(*args, timeout=30):
    return subprocess.run(list(args), capture_output=True, text=True, timeout=timeout)


def test_check_conformance():
    mdir = manifests_dir()
    check(mdir is not None, "conformance manifests not found (set GM_CONFORMANCE_MANIFESTS)")
    if mdir is None:
        return
    files = sorted(f for f in os.listdir(mdir) if f.endswith(".yaml"))
    check(len(files) >= 20, "expected the mesh conformance manifests, found %d" % len(files))
    for f in files:
        with tempfile.TemporaryDirectory() as d:
            shutil.copy(os.path.join(mdir, "manifests.yaml"), d)
            if f != "manifests.yaml":
                shutil.copy(os.path.join(mdir, f), d)
            for prog in (ZTUNNEL, WAYPOINT):
                r = run(prog, "--check", "--config-dir", d)
                check(r.returncode == 0 and r.stdout.strip() == "",
                      "%s --check %s: rc=%d out=%r" % (os.path.basename(prog), f, r.returncode,
                                                       r.stdout[:500]))


BAD = """apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: bad
  namespace: ns
spec:
  parentRefs: [{group: "", kind: Service, name: svc}]
  rules:
  - matches:
    - path: {type: PathPrefix, value: no-slash}
    backendRefs: [{name: svc, port: 80, weight: -1}]
---
apiVersion: v1
kind: Service
metadata: {name: svc, namespace: ns}
spec: {ports: [{port: 80}]}
"""


def test_check_errors():
    with tempfile.TemporaryDirectory() as d:
        with open(os.path.join(d, "bad.yaml"), "w") as fh:
            fh.write(BAD)
        with open(os.path.join(d, "broken.yaml"), "w") as fh:
            fh.write("apiVersion: v1\nkind: [\n")
        r = run(ZTUNNEL, "--check", "--config-dir", d)
        check(r.returncode == 1, "bad config must exit 1, got %d" % r.returncode)
        out = r.stdout
        check("bad.yaml:10:" in out and "HTTPRoute ns/bad" in out and
              "spec.rules[0].matches[0].path.value" in out,
              "path error located: %r" % out)
        check("spec.rules[0].backendRefs[0].weight" in out, "weight error located: %r" % out)
        check("broken.yaml:" in out, "syntax error located: %r" % out)
    r = run(ZTUNNEL, "--check")
    check(r.returncode == 2, "usage error must exit 2, got %d" % r.returncode)
    r = run(WAYPOINT, "--check", "--config-dir", "/nonexistent/dir")
    check(r.returncode == 1, "missing dir must exit 1, got %d" % r.returncode)
    r = run(ZTUNNEL, "--no-such-flag")
    check(r.returncode == 2, "unknown flag must exit 2, got %d" % r.returncode)
    r = run(ZTUNNEL, "--help")
    check(r.returncode == 0 and "--config-dir" in r.stdout and "GM_CONFIG_DIR" in r.stdout,
          "--help lists the settings")


SVC = """apiVersion: v1
kind: Service
metadata: {name: %s, namespace: ns}
spec: {clusterIP: 10.96.0.%d, ports: [{port: 80}]}
"""


def get(url, method="GET"):
    req = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def wait_for(cond, timeout):
    end = time.time() + timeout
    while time.time() < end:
        try:
            if cond():
                return True
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.05)
    return False


def services(admin):
    _, body = get(admin + "/config_dump")
    dump = json.loads(body)
    return dump, sorted(s["name"] for s in dump["snapshot"]["services"])


def start_daemon(prog, d, extra):
    """Start prog on three fixed ports below the ephemeral range (so no outgoing connection of a
    test running beside it holds one), and pick other ports when one is taken anyway. Returns
    (process, base port) once it answers /healthz/ready, or (process, None)."""
    low = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
    for _ in range(5):
        base = random.randint(10000, max(10001, low - 4))
        p = subprocess.Popen([prog, "--config-dir", d, "--node-name", "n1",
                              "--admin-addr", "127.0.0.1:%d" % base,
                              "--metrics-addr", "127.0.0.1:%d" % (base + 1),
                              "--ready-addr", "127.0.0.1:%d" % (base + 2), "--workers", "1"]
                             + extra, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        ready = "http://127.0.0.1:%d/healthz/ready" % (base + 2)
        if wait_for(lambda: p.poll() is not None or get(ready)[0] == 200, 10) and \
                p.poll() is None:
            return p, base
        if p.poll() is None:
            return p, None  # running but never ready: a real failure
        if "address already in use" not in p.stdout.read():
            return p, None
    return p, None


def test_running_daemon(prog, extra):
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "svc.yaml")
        with open(path, "w") as fh:
            fh.write(SVC % ("one", 1))
        p, base = start_daemon(prog, d, extra)
        admin = "http://127.0.0.1:%d" % (base or 0)
        metrics = "http://127.0.0.1:%d" % ((base or 0) + 1)
        name = os.path.basename(prog)
        try:
            check(base is not None, "%s becomes ready" % name)
            if base is None:
                return
            check(services(admin)[1] == ["one"], "%s loads the directory" % name)
            with open(path + ".tmp", "w") as fh:
                fh.write(SVC % ("one", 1) + "---\n" + SVC % ("two", 2))
            os.rename(path + ".tmp", path)
            t0 = time.time()
            check(wait_for(lambda: services(admin)[1] == ["one", "two"], 1.5),
                  "%s applies a change within a second" % name)
            check(time.time() - t0 < 1.5, "%s change latency %.2fs" % (name, time.time() - t0))
            with open(path, "w") as fh:
                fh.write("apiVersion: v1\nkind: Service\nmetadata: {name: [\n")
            check(wait_for(lambda: services(admin)[0]["config_errors"], 2),
                  "%s shows the broken file in /config_dump" % name)
            dump, names = services(admin)
            check(names == ["one", "two"], "%s keeps the last good content: %s" % (name, names))
            err = dump["config_errors"][0]
            check(err["file"].endswith("svc.yaml") and err["line"] > 0,
                  "%s error has a location: %s" % (name, err))
            _, text = get(metrics + "/metrics")
            line = [ln for ln in text.splitlines()
                    if ln.startswith("gammamesh_config_load_errors_total")]
            check(line and float(line[0].split()[-1]) >= 1, "%s counts load errors" % name)
            p.send_signal(signal.SIGHUP)
            time.sleep(0.3)
            check(p.poll() is None and services(admin)[1] == ["one", "two"],
                  "%s survives SIGHUP (a rescan) with its configuration" % name)
            status, _ = get(admin + "/logging?level=config=debug", "POST")
            check(status == 200, "%s /logging sets a level" % name)
            status, _ = get(admin + "/logging?level=bogus", "POST")
            check(status == 400, "%s /logging refuses a bad level" % name)
            status, _ = get(admin + "/quitquitquit", "POST")
            check(status == 200, "%s /quitquitquit answers" % name)
            rc = p.wait(timeout=15)
            check(rc == 0, "%s exits 0 after /quitquitquit, got %d" % (name, rc))
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
            out = p.stdout.read()
            if failures:
                print(out[-3000:], file=sys.stderr)


def main():
    test_check_conformance()
    test_check_errors()
    test_running_daemon(ZTUNNEL, ["--capture=false"])
    test_running_daemon(WAYPOINT, ["--listen-addr", "127.0.0.1:0"]
                        if "--listen-addr" in run(WAYPOINT, "--help").stdout else [])
    print("%d checks, %d failed" % (checks, len(failures)))
    return 1 if failures or checks == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
