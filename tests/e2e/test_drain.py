"""Drain: SIGTERM to the client node's ztunnel while connections transfer; a second ztunnel
started beside it (SO_REUSEPORT) takes the new connections; nothing open is lost."""

import json
import os
import signal
import time

import pytest

from conftest import DEMO, Lines, echo_once, make_lab, metric_sum, wait_for

# N connections to HOST:PORT, each echoing 16 KiB chunks for SECONDS after all are up; prints
# "ready" once every connection has echoed once, then one JSON line with the outcome.
HOLDERS = r"""
import hashlib, json, os, socket, sys, threading, time
host, port, n, seconds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
up = threading.Barrier(n + 1)
results = [None] * n
def one(i):
    r = {"i": i, "bytes": 0, "rounds": 0, "error": None, "intact": True, "eof": False}
    results[i] = r
    try:
        s = socket.create_connection((host, port), timeout=10)
        s.settimeout(10)
        first = True
        end = None
        while end is None or time.monotonic() < end:
            chunk = os.urandom(16384)
            s.sendall(chunk)
            got = bytearray()
            while len(got) < len(chunk):
                b = s.recv(len(chunk) - len(got))
                if not b:
                    raise EOFError("closed after %d bytes" % r["bytes"])
                got += b
            r["intact"] &= got == chunk
            r["bytes"] += len(chunk)
            r["rounds"] += 1
            if first:
                first = False
                up.wait(20)
                end = time.monotonic() + seconds
            time.sleep(0.01)
        s.shutdown(socket.SHUT_WR)
        r["eof"] = s.recv(1) == b""
        s.close()
    except Exception as e:
        r["error"] = "%s: %s" % (type(e).__name__, e)
        try:
            up.abort()
        except Exception:
            pass
threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
for t in threads:
    t.start()
try:
    up.wait(20)
    print("ready", flush=True)
except threading.BrokenBarrierError:
    print("broken", flush=True)
for t in threads:
    t.join(seconds + 30)
print(json.dumps(results), flush=True)
"""

HOLD_SECONDS = 10
CONNS = 12


@pytest.fixture(scope="module")
def lab(request, tmp_path_factory):
    lab = make_lab(request, tmp_path_factory, "drn")
    lab.up(DEMO)
    return lab


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(") ", 1)[1][0] != "Z"
    except FileNotFoundError:
        return False


def test_drain_loses_nothing_and_successor_takes_new_connections(lab, tmp_path):
    client = lab.pod("demo", app="client")
    old = lab.daemon("ztunnel-" + client["node"])
    assert old["alive"], old
    with open("/proc/%d/cmdline" % old["pid"], "rb") as f:
        assert os.path.basename(f.read().split(b"\0")[0]) == b"ztunnel"
    vip = lab.vip("demo", "service-b")
    assert echo_once(lab, client["netns"], vip, 9090, "before")["ok"]

    holders = lab.spawn_piped(client["netns"], "/usr/bin/python3", "-c", HOLDERS, vip, "9090",
                              str(CONNS), str(HOLD_SECONDS))
    out = Lines(holders)
    assert out.next(30) == "ready", "the held connections did not all open"
    t_term = time.monotonic()
    os.kill(old["pid"], signal.SIGTERM)

    # a second ztunnel beside the draining one, same command line, other local ports
    argv = list(old["argv"]) + ["--admin-addr", "127.0.0.1:15100",
                                "--metrics-addr", "127.0.0.1:15120",
                                "--ready-addr", "127.0.0.1:15121"]
    lab.spawn(old["netns"], *argv, log=tmp_path / "ztunnel-successor.log")
    wait_for(lambda: lab.http_get(client["node"], 15121, "/healthz/ready", timeout=2)[0] == 200,
             15, what="the second ztunnel to be ready")

    # new connections while the first one drains
    assert alive(old["pid"]), "the first ztunnel exited while connections were still open"
    fresh = [echo_once(lab, client["netns"], vip, 9090, "during-drain-%d" % i) for i in range(6)]
    assert all(r["ok"] for r in fresh), "new connections during the drain failed: %s" % fresh
    res = lab.exec("demo/app=client", "echo-client", "http://service-b.demo/during-drain",
                   "--count", "3", timeout=30)
    assert res.stdout.count("StatusCode=200") == 3, res.stdout + res.stderr
    assert time.monotonic() - t_term < HOLD_SECONDS, "the checks took longer than the hold"
    took = metric_sum(lab.metrics(client["node"], port=15120),
                      "istio_tcp_connections_opened_total", reporter="source")
    assert took >= 7, "the second ztunnel did not take the new connections (opened %s)" % took
    assert alive(old["pid"]), "the first ztunnel did not wait for its open connections"

    line = out.next(HOLD_SECONDS + 40)
    results = json.loads(line)
    lost = [r for r in results if r["error"] or not r["intact"] or not r["eof"]]
    assert not lost, "connections lost or damaged during the drain: %s" % lost
    assert all(r["rounds"] >= 20 for r in results), results

    # with its connections done, the old ztunnel leaves well before the 30 s deadline...
    wait_for(lambda: not alive(old["pid"]), 15, what="the drained ztunnel to exit")
    log = lab.log("ztunnel-" + client["node"])
    assert "draining" in log, log[-2000:]
    # ...and the successor keeps serving (the old one's exit did not undo its capture)
    after = [echo_once(lab, client["netns"], vip, 9090, "after-%d" % i) for i in range(4)]
    assert all(r["ok"] for r in after), "connections after the first ztunnel exited: %s" % after
