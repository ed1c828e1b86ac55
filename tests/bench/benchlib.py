#!/usr/bin/python3
"""Shared helpers of the gammamesh benchmarks (tests/bench/l4, tests/bench/l7).

Python 3 standard library only; the benchmarks run as root because they drive the lab
(tests/lab/lab), which builds network namespaces. Everything the benchmarks start runs inside
lab namespaces (198.18.0.0/15); nothing touches the machine's own network namespace.

This file is also a small program that the benchmarks run *inside* a pod's network namespace
(`ip netns exec NETNS python3 benchlib.py MODE …`):

  rtt HOST PORT N WARMUP    N times: new TCP connection, send 1 byte, read it back, close;
                            prints {"us": [...], "errors": E, "first_error": "..."} as JSON
  hold HOST PORT N          opens N connections, checks each with a 1-byte echo, prints
                            "ready N", keeps them open until a line (or EOF) on stdin, closes
  sink PORT                 accepts one connection, reads until EOF, prints bytes and seconds
  source HOST PORT SECS     sends as fast as it can for SECS seconds, then closes
  httpget URL TIMEOUT       one HTTP/1.1 GET; prints the status code (0 on failure)
"""

import json
import math
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.realpath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
LAB = os.path.join(REPO, "tests", "lab", "lab")
PYTHON = sys.executable or "/usr/bin/python3"
CLK_TCK = os.sysconf("SC_CLK_TCK")


class BenchError(Exception):
    """The benchmark itself could not run (setup failure, missing tool, broken lab)."""


# ---------------------------------------------------------------------------------------------
# logging


_T0 = time.monotonic()


def log(msg):
    """Progress on stderr, so stdout stays the report."""
    sys.stderr.write("[%6.1fs] %s\n" % (time.monotonic() - _T0, msg))
    sys.stderr.flush()


# ---------------------------------------------------------------------------------------------
# /proc readings


def cpu_ticks(pid):
    """utime + stime of a process (all its threads), in clock ticks; None if it is gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            text = f.read()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()
    return int(fields[11]) + int(fields[12])      # fields 14 and 15 of stat(5)


def cpu_seconds(pids):
    """Sum of utime + stime over pids, in seconds (a missing process counts 0)."""
    return sum((cpu_ticks(p) or 0) for p in pids if p) / CLK_TCK


def rss_kib(pid):
    """VmRSS of a process in KiB, or None."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def fd_limit(pid):
    """The soft 'Max open files' of a process, or None."""
    try:
        with open("/proc/%d/limits" % pid) as f:
            for line in f:
                if line.startswith("Max open files"):
                    v = line.split()[3]
                    return None if v == "unlimited" else int(v)
    except OSError:
        return None
    return None


def cpu_times():
    """(busy, total) clock ticks of the whole machine, from the first line of /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + (v[4] if len(v) > 4 else 0)           # idle + iowait
    total = sum(v[:8])                                   # guest time is already in user
    return total - idle, total


def busy_pct(before, after):
    """Share of all CPUs that was busy between two cpu_times() readings, in percent of the
    machine (100 = every CPU busy all the time)."""
    db, dt = after[0] - before[0], after[1] - before[1]
    return 100.0 * db / dt if dt > 0 else None


def background_busy(seconds=1.0):
    """How busy the machine is before we load it (other tenants, builds, fuzzers)."""
    a = cpu_times()
    time.sleep(seconds)
    return busy_pct(a, cpu_times())


def machine_facts():
    facts = {"cpus": os.cpu_count()}
    try:
        facts["loadavg"] = open("/proc/loadavg").read().split()[:3]
    except OSError:
        pass
    facts["kernel"] = os.uname().release
    return facts


# ---------------------------------------------------------------------------------------------
# statistics and formatting


def percentile(values, p):
    """Nearest-rank percentile (p in 0..100) of a non-empty list."""
    s = sorted(values)
    k = max(1, int(math.ceil(p / 100.0 * len(s))))
    return s[min(k, len(s)) - 1]


def median(values):
    s = sorted(values)
    n = len(s)
    if n == 0:
        return None
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2.0


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def fmt(v, spec="%.2f", none="n/a"):
    if v is None:
        return none
    if isinstance(v, str):
        return v
    return spec % v


def table(header, rows):
    """A plain text table, columns left-aligned, two spaces apart."""
    rows = [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(len(header))]
    out = []
    for r in [header] + rows:
        out.append("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    return "\n".join(out)


def target_line(ok, text):
    """'PASS target …', 'MISS target …'; ok None = no figure."""
    if ok is None:
        return "MISS target %s: no figure" % text
    return "%s target %s" % ("PASS" if ok else "MISS", text)


def write_json(path, data):
    if not path:
        return
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=2, sort_keys=True)
        f.write("\n")
    os.replace(tmp, path)


# ---------------------------------------------------------------------------------------------
# commands and processes


def need_tools(names):
    missing = [n for n in names if shutil.which(n) is None]
    if missing:
        raise BenchError("missing tools: %s (Debian: apt-get install %s)"
                         % (", ".join(missing), " ".join(_pkg(n) for n in missing)))


def _pkg(tool):
    return {"stunnel": "stunnel4", "stunnel4": "stunnel4"}.get(tool, tool)


def run(argv, timeout=120, check=True, env=None, input=None):
    """Run a command; returns CompletedProcess (text)."""
    try:
        res = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env,
                             input=input)
    except subprocess.TimeoutExpired as e:
        raise BenchError("timed out after %ss: %s" % (timeout, " ".join(argv))) from e
    if check and res.returncode != 0:
        raise BenchError("%s exited %d:\n%s%s" % (" ".join(argv), res.returncode,
                                                 res.stdout[-2000:], res.stderr[-2000:]))
    return res


def in_netns(netns, argv):
    return ["ip", "netns", "exec", netns] + list(argv)


def helper(netns, mode, *args):
    """argv running this file's MODE inside a network namespace."""
    return in_netns(netns, [PYTHON, os.path.join(HERE, "benchlib.py"), mode] +
                    [str(a) for a in args])


class Procs:
    """Processes this benchmark starts; stopped by PID (only ours), always, at the end."""

    def __init__(self, logdir):
        self.logdir = logdir
        self.procs = {}          # name -> Popen

    def start(self, name, netns, argv, stdin=None, stdout=None):
        """Start argv inside netns in its own session; output to <logdir>/<name>.log unless
        stdout is given. `ip netns exec` execs the program, so the PID is the program's."""
        if name in self.procs and self.procs[name].poll() is None:
            raise BenchError("%s is already running" % name)
        logf = open(os.path.join(self.logdir, name + ".log"), "ab")
        p = subprocess.Popen(in_netns(netns, argv), stdin=stdin or subprocess.DEVNULL,
                             stdout=stdout or logf, stderr=logf, start_new_session=True,
                             close_fds=True)
        logf.close()
        self.procs[name] = p
        return p

    def pid(self, name):
        return self.procs[name].pid

    def alive(self, name):
        p = self.procs.get(name)
        return p is not None and p.poll() is None

    def log_tail(self, name, n=15):
        try:
            with open(os.path.join(self.logdir, name + ".log"), errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    def stop(self, name, grace=3.0):
        p = self.procs.pop(name, None)
        if p is None or p.poll() is not None:
            return
        try:
            p.send_signal(signal.SIGTERM)
            p.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=5)
        except ProcessLookupError:
            pass

    def stop_all(self):
        for name in list(self.procs):
            try:
                self.stop(name)
            except Exception as e:  # keep going: every process must be stopped
                log("could not stop %s: %s" % (name, e))


def wait_listen(netns, port, timeout=10.0, proc=None, procs=None, name=None):
    """Wait until something listens on TCP port in netns."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        res = run(in_netns(netns, ["ss", "-ltnH", "sport = :%d" % port]), check=False)
        if res.stdout.strip():
            return
        if procs is not None and name is not None and not procs.alive(name):
            raise BenchError("%s exited before listening on %d:\n%s"
                             % (name, port, procs.log_tail(name)))
        time.sleep(0.1)
    raise BenchError("nothing listens on port %d in %s after %.0fs" % (port, netns, timeout))


# ---------------------------------------------------------------------------------------------
# the lab


class Lab:
    """One named lab (GMLAB_NAME), driven through tests/lab/lab."""

    def __init__(self, name, build=None):
        self.name = name
        self.env = dict(os.environ)
        self.env["GMLAB_NAME"] = name
        self.env.pop("GMLAB_RUN", None)
        if build:
            self.env["GM_BUILD_DIR"] = build
        self.is_up = False
        self._status = None

    def cmd(self, *args, timeout=300, check=True, input=None):
        return run([LAB] + list(args), timeout=timeout, check=check, env=self.env, input=input)

    def down(self):
        res = self.cmd("down", check=False, timeout=120)
        self.is_up = False
        if res.returncode != 0:
            log("lab down exited %d: %s" % (res.returncode, res.stderr.strip()[-500:]))
        return res

    def up(self, manifest, timeout=120):
        self.down()            # clean up after a crashed earlier run of this same named lab
        self.is_up = True      # even a failed `up` leaves things for `down` to remove
        res = self.cmd("up", "--timeout", str(timeout), "-", input=manifest,
                       timeout=timeout + 120, check=False)
        if res.returncode != 0:
            raise BenchError("lab up failed (exit %d):\n%s" % (res.returncode,
                                                               res.stderr.strip()[-3000:]))
        self._status = None

    def apply(self, manifest, timeout=60):
        """lab apply; returns (ok, stderr)."""
        res = self.cmd("apply", "--timeout", str(timeout), "-", input=manifest,
                       timeout=timeout + 60, check=False)
        self._status = None
        return res.returncode == 0, res.stderr.strip()

    def status(self, fresh=False):
        if self._status is None or fresh:
            res = self.cmd("status", "--json", timeout=60)
            self._status = json.loads(res.stdout)
        return self._status

    def pods(self, ns, name_prefix):
        """Pods of namespace ns whose name starts with name_prefix + '-' (Deployment pods)."""
        return [p for p in self.status()["pods"] if p["namespace"] == ns and
                (p["name"] == name_prefix or p["name"].startswith(name_prefix + "-"))]

    def pod(self, ns, name_prefix):
        pods = self.pods(ns, name_prefix)
        if len(pods) != 1:
            raise BenchError("expected one pod %s/%s-*, found %d" % (ns, name_prefix, len(pods)))
        return pods[0]

    def daemon_pid(self, name):
        for d in self.status()["daemons"]:
            if d["name"] == name:
                if not d["alive"]:
                    raise BenchError("%s is not running (log: %s)" % (name, d["log"]))
                return d["pid"]
        raise BenchError("no daemon %s in the lab" % name)

    def service_vip(self, ns, name):
        for s in self.status()["services"]:
            if s["namespace"] == ns and s["name"] == name:
                return s["vip"]
        raise BenchError("no Service %s/%s" % (ns, name))

    def log_tail(self, name, n=20):
        res = self.cmd("logs", "-n", str(n), name, check=False, timeout=30)
        return res.stdout

    def save_logs(self, dest):
        """Copy the lab's logs (daemons and pods) to dest, before `down` removes them."""
        try:
            src = os.path.join(self.status()["run"], "logs")
        except (BenchError, ValueError, KeyError):
            return
        if os.path.isdir(src):
            shutil.copytree(src, dest, dirs_exist_ok=True)


def pod_pid(pod):
    """PID of the (first) program a pod runs, if alive."""
    for p in pod.get("processes") or []:
        if p.get("alive"):
            return p["pid"]
    return None


# ---------------------------------------------------------------------------------------------
# measurements driven from the benchmarks


def iperf3_run(netns, host, port, seconds):
    """One iperf3 client run inside netns; returns (Gbit/s received, parsed JSON)."""
    res = run(in_netns(netns, ["iperf3", "-c", host, "-p", str(port), "-t", str(seconds),
                               "-J"]), timeout=seconds + 30, check=False)
    try:
        data = json.loads(res.stdout)
    except ValueError:
        raise BenchError("iperf3 -c %s:%d gave no JSON (exit %d): %s"
                         % (host, port, res.returncode, (res.stdout + res.stderr)[-800:]))
    if data.get("error"):
        raise BenchError("iperf3 -c %s:%d: %s" % (host, port, data["error"]))
    bps = data["end"]["sum_received"]["bits_per_second"]
    return bps / 1e9, data


def python_stream_run(procs, client_netns, server_netns, host, port, seconds):
    """Fallback single-stream throughput with this file's sink/source modes."""
    name = "pysink-%d" % port
    p = procs.start(name, server_netns,
                    [PYTHON, os.path.join(HERE, "benchlib.py"), "sink", str(port)],
                    stdout=subprocess.PIPE)
    wait_listen(server_netns, port, procs=procs, name=name)
    run(helper(client_netns, "source", host, port, seconds), timeout=seconds + 30)
    out, _ = p.communicate(timeout=30)
    procs.procs.pop(name, None)
    d = json.loads(out)
    return d["bytes"] * 8 / d["seconds"] / 1e9, d


def rtt_run(netns, host, port, n, warmup=0):
    """n connect+1-byte round trips from netns; returns (list of µs, errors, first error)."""
    res = run(helper(netns, "rtt", host, port, n, warmup), timeout=60 + n * 0.2)
    d = json.loads(res.stdout)
    return d["us"], d["errors"], d.get("first_error")


class Holder:
    """N open connections from a pod, held until release()."""

    def __init__(self, procs, name, netns, host, port, n):
        self.procs, self.name, self.n = procs, name, n
        self.p = procs.start(name, netns, [PYTHON, os.path.join(HERE, "benchlib.py"), "hold",
                                           host, str(port), str(n)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    def wait_ready(self, timeout=60):
        import select
        deadline = time.monotonic() + timeout
        buf = b""
        while time.monotonic() < deadline:
            r, _, _ = select.select([self.p.stdout], [], [], 0.5)
            if r:
                chunk = os.read(self.p.stdout.fileno(), 4096)
                if not chunk:
                    break
                buf += chunk
                m = re.search(rb"ready (\d+)", buf)
                if m:
                    return int(m.group(1))
                m = re.search(rb"failed (.*)\n", buf)
                if m:
                    raise BenchError("holding %d connections failed: %s"
                                     % (self.n, m.group(1).decode(errors="replace")))
            if self.p.poll() is not None:
                break
        raise BenchError("holding %d connections failed: %s\n%s"
                         % (self.n, buf.decode(errors="replace")[-500:],
                            self.procs.log_tail(self.name)))

    def release(self):
        try:
            self.p.stdin.write(b"close\n")
            self.p.stdin.flush()
            self.p.wait(timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            pass
        self.procs.stop(self.name)


def make_certs(d):
    """A throwaway ECDSA P-256 CA and server/client leaves (SPIFFE URI SANs) for stunnel."""
    def ossl(*args):
        run(["openssl"] + list(args), timeout=60)
    ossl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", d + "/ca.key")
    ossl("req", "-x509", "-new", "-key", d + "/ca.key", "-sha256", "-days", "2",
         "-subj", "/CN=bench-ca", "-out", d + "/ca.crt")
    for n in ("server", "client"):
        ossl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "%s/%s.key" % (d, n))
        ossl("req", "-new", "-key", "%s/%s.key" % (d, n), "-subj", "/CN=%s.bench.local" % n,
             "-out", "%s/%s.csr" % (d, n))
        with open("%s/%s.ext" % (d, n), "w") as f:
            f.write("subjectAltName=DNS:%s.bench.local,URI:spiffe://cluster.local/ns/bench/sa/%s\n"
                    "extendedKeyUsage=serverAuth,clientAuth\n" % (n, n))
        ossl("x509", "-req", "-in", "%s/%s.csr" % (d, n), "-CA", d + "/ca.crt", "-CAkey",
             d + "/ca.key", "-CAcreateserial", "-days", "2", "-sha256", "-extfile",
             "%s/%s.ext" % (d, n), "-out", "%s/%s.crt" % (d, n))


def workdir(prefix):
    return tempfile.mkdtemp(prefix=prefix)


def install_signal_handlers():
    """SIGTERM/SIGHUP behave like Ctrl-C, so the finally blocks clean up."""
    def handler(signum, frame):
        raise KeyboardInterrupt()
    for s in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, handler)


# ---------------------------------------------------------------------------------------------
# helper modes (run inside a pod's network namespace)


def _raise_nofile(n):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(max(soft, n), hard) if hard != resource.RLIM_INFINITY else max(soft, n)
    if want > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def _connect(host, port, timeout):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.settimeout(timeout)
    s.connect((host, port))
    return s


def _recv_exact(s, n):
    got = b""
    while len(got) < n:
        b = s.recv(n - len(got))
        if not b:
            raise OSError("connection closed after %d of %d bytes" % (len(got), n))
        got += b
    return got


def mode_rtt(host, port, n, warmup):
    port, n, warmup = int(port), int(n), int(warmup)
    clock = time.perf_counter_ns
    out, errors, first = [], 0, None
    for i in range(warmup + n):
        t0 = clock()
        s = None
        try:
            s = _connect(host, port, 5.0)
            s.sendall(b"x")
            if s.recv(1) != b"x":
                raise OSError("no echo")
            t1 = clock()
            if i >= warmup:
                out.append((t1 - t0) / 1000.0)
        except OSError as e:
            errors += 1
            first = first or "%s: %s" % (type(e).__name__, e)
            if errors > max(10, n // 20):
                break
        finally:
            if s is not None:
                s.close()
    print(json.dumps({"us": out, "errors": errors, "first_error": first}))


def mode_hold(host, port, n):
    port, n = int(port), int(n)
    _raise_nofile(n + 64)
    socks = []
    try:
        for i in range(n):
            s = _connect(host, port, 10.0)
            s.sendall(b"h")
            if _recv_exact(s, 1) != b"h":
                raise OSError("no echo on connection %d" % i)
            socks.append(s)
    except OSError as e:
        print("failed after %d connections: %s" % (len(socks), e), flush=True)
        sys.stdin.readline()
        return 1
    print("ready %d" % len(socks), flush=True)
    sys.stdin.readline()
    for s in socks:
        s.close()
    return 0


def mode_sink(port):
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("0.0.0.0", int(port)))
    ls.listen(1)
    c, _ = ls.accept()
    buf = bytearray(1 << 20)
    total, t0 = 0, None
    while True:
        k = c.recv_into(buf)
        if t0 is None:
            t0 = time.monotonic()
        if not k:
            break
        total += k
    print(json.dumps({"bytes": total, "seconds": time.monotonic() - (t0 or time.monotonic())}))


def mode_source(host, port, secs):
    s = _connect(host, int(port), 10.0)
    s.settimeout(None)
    data = b"\0" * (1 << 20)
    end = time.monotonic() + float(secs)
    while time.monotonic() < end:
        s.sendall(data)
    s.shutdown(socket.SHUT_WR)
    s.recv(1)
    s.close()


def mode_httpget(url, timeout):
    m = re.match(r"http://([^/:]+)(?::(\d+))?(/.*)?$", url)
    host, port, path = m.group(1), int(m.group(2) or 80), m.group(3) or "/"
    try:
        s = _connect(host, port, float(timeout))
        s.sendall(("GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n"
                   % (path, host)).encode())
        head = s.recv(4096).decode("latin-1")
        s.close()
        m = re.match(r"HTTP/1\.[01] (\d{3})", head)
        print(m.group(1) if m else "0")
    except OSError as e:
        print("0 %s" % e)


MODES = {"rtt": mode_rtt, "hold": mode_hold, "sink": mode_sink, "source": mode_source,
         "httpget": mode_httpget}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in MODES:
        sys.exit("usage: benchlib.py %s ARGS…" % "|".join(sorted(MODES)))
    sys.exit(MODES[sys.argv[1]](*sys.argv[2:]) or 0)
