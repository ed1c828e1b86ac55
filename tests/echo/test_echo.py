#!/usr/bin/env python3
"""End-to-end test of echo-server and echo-client on loopback.

usage: test_echo.py ECHO_SERVER ECHO_CLIENT

Starts echo-server on free high ports of 127.0.0.1 (and ::1 when the host has IPv6), drives it
with echo-client and with raw sockets, and checks what comes back. Exits 1 on the first failed
check, 77 (meson's "skipped") only if loopback itself is unusable.
"""

import hashlib
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

SERVER = CLIENT = None
FAILURES = []


def fail(msg):
    print("FAIL: " + msg, flush=True)
    FAILURES.append(msg)


def check(cond, msg):
    if not cond:
        fail(msg)
    return cond


def free_port(family=socket.AF_INET, addr="127.0.0.1"):
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((addr, 0))
        return s.getsockname()[1]


def wait_port(port, addr="127.0.0.1", timeout=10.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            with socket.create_connection((addr, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


class Server:
    def __init__(self, args, env_extra=None, wait=(), addr="127.0.0.1"):
        self.log = tempfile.TemporaryFile(mode="w+")
        env = dict(os.environ)
        env.update(env_extra or {})
        self.proc = subprocess.Popen([SERVER] + args, stderr=self.log, stdout=self.log, env=env)
        for port in wait:
            if not wait_port(port, addr):
                self.stop()
                raise RuntimeError("echo-server did not listen on %s:%d:\n%s"
                                   % (addr, port, self.text()))

    def text(self):
        self.log.seek(0)
        return self.log.read()

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def client(*args, timeout=60):
    t0 = time.monotonic()
    p = subprocess.run([CLIENT] + list(args), capture_output=True, text=True, timeout=timeout)
    return p.returncode, p.stdout, p.stderr, time.monotonic() - t0


def lines_of(out, i):
    """The output lines of request i, prefixes stripped: (statuses, headers, body lines)."""
    status = re.findall(r"^\[%d\] StatusCode=(\d+)$" % i, out, re.M)
    headers = re.findall(r"^\[%d\] ResponseHeader=(.*)$" % i, out, re.M)
    body = re.findall(r"^\[%d body\] (.*)$" % i, out, re.M)
    return status, headers, body


def field(body, key):
    vals = [l[len(key) + 1:] for l in body if l.startswith(key + "=")]
    return vals[0] if len(vals) == 1 else None


EXPECTED_ORDER = ["ServiceVersion", "ServicePort", "Host", "URL", "Cluster", "IstioVersion",
                  "Method", "Proto", "IP", "Alpn"]


def check_body_shape(body, what):
    keys = [l.split("=", 1)[0] for l in body]
    check(keys[:len(EXPECTED_ORDER)] == EXPECTED_ORDER, "%s: field order %s" % (what, keys))
    rest = keys[len(EXPECTED_ORDER):]
    hn = [k for k in rest if k != "RequestHeader"]
    check(hn[:1] == ["Hostname"], "%s: Hostname after RequestHeader lines: %s" % (what, keys))
    names = [l.split("=", 1)[1].split(":", 1)[0] for l in body if l.startswith("RequestHeader=")]
    check(names == sorted(names), "%s: RequestHeader names not sorted: %s" % (what, names))


def test_http1_basic(p):
    rc, out, err, _ = client("http://127.0.0.1:%d/hello/world?x=1&y=2" % p["http"],
                             "--count", "3", "-H", "X-Header-Add:foo", "-Hx-multi:a",
                             "-H", "X-Multi: b", "--method=GET")
    check(rc == 0, "http1 basic: exit %d, stderr %r" % (rc, err))
    for i in range(3):
        status, headers, body = lines_of(out, i)
        check(status == ["200"], "http1 [%d]: status %s" % (i, status))
        check("Content-Type:text/plain" in headers, "http1 [%d]: headers %s" % (i, headers))
        check_body_shape(body, "http1 [%d]" % i)
        check(field(body, "ServiceVersion") == "v-test", "http1: ServiceVersion %s" % body)
        check(field(body, "ServicePort") == str(p["http"]), "http1: ServicePort %s" % body)
        check(field(body, "Host") == "127.0.0.1:%d" % p["http"], "http1: Host %s" % body)
        check(field(body, "URL") == "/hello/world?x=1&y=2", "http1: URL %s" % body)
        check(field(body, "Method") == "GET", "http1: Method")
        check(field(body, "Proto") == "HTTP/1.1", "http1: Proto")
        check(field(body, "IP") == "127.0.0.1", "http1: IP")
        check(field(body, "Alpn") == "", "http1: Alpn")
        check(field(body, "Cluster") == "" and field(body, "IstioVersion") == "", "http1: empties")
        check(field(body, "Hostname") == "echo-test-pod", "http1: Hostname %s" % body)
        rh = [l for l in body if l.startswith("RequestHeader=")]
        check("RequestHeader=X-Header-Add:foo" in rh, "http1: X-Header-Add missing: %s" % rh)
        multi = [l for l in rh if l.startswith("RequestHeader=X-Multi:")]
        check(multi == ["RequestHeader=X-Multi:a", "RequestHeader=X-Multi:b"],
              "http1: repeated header values/order: %s" % multi)
        check(field(body, "BodyLength") is None, "http1: BodyLength without a body")
    check(not re.search(r"^\[\d+\] error=", out, re.M), "http1: errors in %r" % out)


def test_keepalive(srv, p):
    """--count 3 must use one connection: the server logs the same peer port three times."""
    tag = "/keepalive-%d" % time.time_ns()
    rc, out, _, _ = client("http://127.0.0.1:%d%s" % (p["http"], tag), "--count", "3")
    check(rc == 0, "keepalive: exit %d" % rc)
    time.sleep(0.1)
    peers = re.findall(r"peer=127\.0\.0\.1:(\d+) GET %s " % re.escape(tag), srv.text())
    check(len(peers) == 3 and len(set(peers)) == 1, "keepalive: peer ports %s" % peers)
    tag = "/keepalive-h2-%d" % time.time_ns()
    rc, out, _, _ = client("http://127.0.0.1:%d%s" % (p["http"], tag), "--count", "3", "--h2")
    time.sleep(0.1)
    peers = re.findall(r"peer=127\.0\.0\.1:(\d+) GET %s " % re.escape(tag), srv.text())
    check(rc == 0 and len(peers) == 3 and len(set(peers)) == 1, "keepalive h2: %s" % peers)


def test_host_override(p):
    rc, out, _, _ = client("http://127.0.0.1:%d/h" % p["http"], "-H", "Host:foo.example:8080")
    _, _, body = lines_of(out, 0)
    check(rc == 0 and field(body, "Host") == "foo.example:8080", "host override: %r" % out)
    check(not any(l.startswith("RequestHeader=Host:") for l in body), "Host echoed as header")


def test_codes(p):
    rc, out, _, _ = client("http://127.0.0.1:%d/c?codes=500:2,200:1" % p["http"], "--count", "6")
    got = [lines_of(out, i)[0] for i in range(6)]
    check(rc == 0 and got == [["500"], ["500"], ["200"]] * 2, "codes cycle: %s" % got)
    rc, out, _, _ = client("http://127.0.0.1:%d/c?codes=abc" % p["http"])
    check(rc == 0 and lines_of(out, 0)[0] == ["400"], "bad codes -> 400: %r" % out)


def test_fail_first(p):
    rc, out, _, _ = client("http://127.0.0.1:%d/r?fail_first=2&key=k-%d" % (p["http"], os.getpid()),
                           "--count", "4")
    got = [lines_of(out, i)[0] for i in range(4)]
    check(rc == 0 and got == [["503"], ["503"], ["200"], ["200"]], "fail_first: %s" % got)


def test_delay(p):
    rc, out, _, took = client("http://127.0.0.1:%d/d?delay=500ms" % p["http"], "--count", "2")
    check(rc == 0 and took >= 1.0, "delay 500ms x2 took %.2fs rc %d" % (took, rc))
    check(took < 5, "delay took too long: %.2fs" % took)
    # A delayed request must not hold up other connections.
    slow = subprocess.Popen([CLIENT, "http://127.0.0.1:%d/slow?delay=2s" % p["http"]],
                            stdout=subprocess.PIPE, text=True)
    time.sleep(0.2)
    rc, out, _, took = client("http://127.0.0.1:%d/fast" % p["http"])
    check(rc == 0 and took < 1.5, "fast request behind a delayed one took %.2fs" % took)
    sout, _ = slow.communicate(timeout=20)
    check(slow.returncode == 0 and "[0] StatusCode=200" in sout, "slow request: %r" % sout)
    # Client timeout: reported per request, and the next request still runs.
    rc, out, _, took = client("http://127.0.0.1:%d/t?delay=3s" % p["http"], "--timeout", "0.5",
                              "--count", "2")
    check(rc == 1, "timeout: exit %d" % rc)
    check(re.search(r"^\[0\] error=.*timeout", out, re.M)
          and re.search(r"^\[1\] error=", out, re.M), "timeout lines: %r" % out)
    check(took < 3, "timeout not enforced: %.2fs" % took)
    rc, out, _, _ = client("http://127.0.0.1:%d/d?delay=xyz" % p["http"])
    check(lines_of(out, 0)[0] == ["400"], "bad delay -> 400: %r" % out)


def test_headers_knob(p):
    for extra in ([], ["--h2"]):
        url = "http://127.0.0.1:%d/x?headers=X-Foo:bar,x-two:2" % p["http"]
        rc, out, _, _ = client(url, *extra)
        _, headers, _ = lines_of(out, 0)
        check(rc == 0 and "X-Foo:bar" in headers and "X-Two:2" in headers,
              "headers knob %s: %s" % (extra, headers))


def test_h2(p):
    for port in (p["http"], p["grpc"]):
        rc, out, _, _ = client("http://127.0.0.1:%d/h2path?q=1" % port, "--h2", "--count", "3",
                               "-H", "X-Header-Add:foo", "-H", "Host:h2.example")
        check(rc == 0, "h2 port %d: exit %d %r" % (port, rc, out))
        for i in range(3):
            status, headers, body = lines_of(out, i)
            check(status == ["200"], "h2 [%d]: %s" % (i, status))
            check_body_shape(body, "h2 [%d]" % i)
            check(field(body, "Proto") == "HTTP/2.0", "h2: Proto %s" % body)
            check(field(body, "Host") == "h2.example", "h2: Host %s" % body)
            check(field(body, "URL") == "/h2path?q=1", "h2: URL")
            check(field(body, "ServicePort") == str(port), "h2: ServicePort")
            check("RequestHeader=X-Header-Add:foo" in body, "h2: header %s" % body)


def test_body(p):
    payload = "hello, echo " * 1000
    digest = hashlib.sha256(payload.encode()).hexdigest()
    for extra in ([], ["--h2"]):
        rc, out, _, _ = client("http://127.0.0.1:%d/post" % p["http"], "--method", "POST",
                               "--body", payload, "--count", "2", *extra)
        for i in range(2):
            _, _, body = lines_of(out, i)
            check(rc == 0 and field(body, "Method") == "POST", "body %s: %r" % (extra, out[:300]))
            check(field(body, "BodyLength") == str(len(payload)), "BodyLength %s" % extra)
            check(field(body, "BodySha256") == digest, "BodySha256 %s" % extra)


def raw_exchange(port, data, addr="127.0.0.1", timeout=5.0, half_close=True):
    with socket.create_connection((addr, port), timeout=timeout) as s:
        s.sendall(data)
        if half_close:
            s.shutdown(socket.SHUT_WR)
        chunks = []
        while True:
            b = s.recv(65536)
            if not b:
                break
            chunks.append(b)
        return b"".join(chunks)


def test_chunked_and_pipelined(p):
    req = (b"POST /chunked HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
           b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
           b"GET /second HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n")
    resp = raw_exchange(p["http"], req, half_close=False)
    text = resp.decode(errors="replace")
    check(text.count("HTTP/1.1 200 OK") == 2, "pipelined: two replies: %r" % text[:200])
    check("BodyLength=11\n" in text, "chunked BodyLength: %r" % text)
    check("BodySha256=%s" % hashlib.sha256(b"hello world").hexdigest() in text, "chunked sha")
    check(text.index("URL=/chunked") < text.index("URL=/second"), "pipelined order")
    check("RequestHeader=Transfer-Encoding" not in text, "Transfer-Encoding echoed")
    # HTTP/1.0 without keep-alive: reply then close (raw_exchange reads to EOF).
    resp = raw_exchange(p["http"], b"GET /ten HTTP/1.0\r\n\r\n", half_close=False)
    check(resp.startswith(b"HTTP/1.1 200") and b"Proto=HTTP/1.0" in resp,
          "http/1.0: %r" % resp[:80])


def test_hostile(srv, p):
    resp = raw_exchange(p["http"], b"\x16\x03\x01garbage that is not http\r\n\r\n")
    check(resp.startswith(b"HTTP/1.1 400"), "garbage -> 400: %r" % resp[:60])
    big = b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + b"a" * (70 * 1024) + b"\r\n\r\n"
    try:
        resp = raw_exchange(p["http"], big, half_close=False)
    except ConnectionResetError:
        resp = b"reset"
    check(resp.startswith(b"HTTP/1.1 431"), "huge header -> 431: %r" % resp[:60])
    resp = raw_exchange(p["http"], b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: zz\r\n\r\n")
    check(resp.startswith(b"HTTP/1.1 400"), "bad content-length -> 400: %r" % resp[:60])
    resp = raw_exchange(p["http"], b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00garbage")
    check(srv.alive(), "server died on a bad h2 frame")
    resp = raw_exchange(p["http"], b"GET /unterminated HTTP/1.1\r\nHost: a")
    check(resp == b"", "partial request then EOF: %r" % resp[:60])
    for i in range(50):  # connect-and-drop churn
        with socket.create_connection(("127.0.0.1", p["http"]), timeout=2) as s:
            s.sendall(b"GET /churn HTTP/1.1\r\nHost: a\r\n")
    rc, out, _, _ = client("http://127.0.0.1:%d/after" % p["http"])
    check(srv.alive() and rc == 0 and "[0] StatusCode=200" in out, "server alive after abuse")


def tcp_half_close(port, payload, read_delay):
    """Send payload, shut down the write side, read everything back from a second thread that
    starts late and reads slowly, so the server still has echo data queued when it sees EOF."""
    got = []
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.settimeout(20)
        s.connect(("127.0.0.1", port))

        def reader():
            time.sleep(read_delay)
            while True:
                b = s.recv(8192)
                if not b:
                    return
                got.append(b)

        t = threading.Thread(target=reader)
        t.start()
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
        t.join(30)
    return b"".join(got)


def test_tcp(p):
    payload = os.urandom(4 * 1024 * 1024)
    got = tcp_half_close(p["tcp"], payload, 0.5)
    check(got == payload,
          "tcp echo with half-close: sent %d got %d bytes" % (len(payload), len(got)))
    got = raw_exchange(p["tcp"], b"ping\n")
    check(got == b"ping\n", "tcp echo, small: %r" % got)
    got = raw_exchange(p["tcp"], b"")
    check(got == b"", "tcp echo of nothing: %r" % got)


def test_client_errors(p):
    rc, out, _, _ = client("http://127.0.0.1:%d/" % free_port(), "--count", "2")
    check(rc == 1 and re.search(r"^\[0\] error=", out, re.M)
          and re.search(r"^\[1\] error=", out, re.M), "refused: rc %d out %r" % (rc, out))
    for args in (["ftp://x/"], [], ["http://127.0.0.1:1/", "--count", "0"],
                 ["http://127.0.0.1:1/", "--bogus"], ["http://127.0.0.1:1/", "-H", "NoColon"]):
        rc, _, _, _ = client(*args)
        check(rc == 2, "usage error %s: exit %d" % (args, rc))
    rc, out, _, _ = client("http://localhost:%d/name" % p["http"], "--method", "HEAD",
                           "--count", "2")
    check(rc == 0 and out.count("StatusCode=200") == 2 and "[0 body]" not in out,
          "HEAD via a name: rc %d %r" % (rc, out))


def make_cert(d):
    openssl = shutil.which("openssl")
    if not openssl:
        return None
    crt, key = os.path.join(d, "cert.crt"), os.path.join(d, "cert.key")
    r = subprocess.run([openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", crt,
                        "-days", "1", "-subj", "/CN=echo"], capture_output=True)
    return (crt, key) if r.returncode == 0 else None


def test_tls(d):
    cert = make_cert(d)
    if not cert:
        print("note: openssl CLI unavailable, TLS check skipped")
        return
    port = free_port()
    srv = Server(["--port=%d" % port, "--tls=%d" % port, "--crt=" + cert[0], "--key=" + cert[1],
                  "--grpc=%d" % free_port(), "--bind=127.0.0.1"], wait=[port])
    try:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.set_alpn_protocols(["http/1.1"])
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            with ctx.wrap_socket(raw) as s:
                s.sendall(b"GET /tls HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
                data = b""
                while True:
                    b = s.recv(65536)
                    if not b:
                        break
                    data += b
        text = data.decode(errors="replace")
        check("HTTP/1.1 200" in text and "Alpn=http/1.1\n" in text, "tls reply: %r" % text)
    except (OSError, ssl.SSLError) as e:
        fail("tls: %r" % e)
    finally:
        srv.stop()


def test_tls_fallback():
    port = free_port()
    srv = Server(["--port=%d" % port, "--tls=%d" % port, "--crt=/nonexistent/c.crt",
                  "--key=/nonexistent/c.key", "--grpc=%d" % free_port(), "--bind=127.0.0.1"],
                 wait=[port])
    rc, out, _, _ = client("http://127.0.0.1:%d/plain" % port)
    check(rc == 0 and "[0] StatusCode=200" in out, "tls fallback to plain: %r" % out)
    check("warning" in srv.text(), "tls fallback warning missing")
    check(srv.stop() == 0, "tls fallback server exit status")


def test_ipv6():
    try:
        port = free_port(socket.AF_INET6, "::1")
    except OSError:
        print("note: no IPv6 loopback, IPv6 check skipped")
        return
    grpc = free_port(socket.AF_INET6, "::1")
    srv = Server(["--port=%d" % port, "--grpc=%d" % grpc, "--bind=::1"])
    try:
        check(wait_port(port, "::1"), "ipv6: echo-server did not listen on [::1]:%d" % port)
        for extra in ([], ["--h2"]):
            rc, out, _, _ = client("http://[::1]:%d/v6" % port, *extra)
            _, _, body = lines_of(out, 0)
            check(rc == 0 and field(body, "IP") == "::1"
                  and field(body, "Host") == "[::1]:%d" % port, "ipv6 %s: %r" % (extra, out))
    finally:
        srv.stop()


def main():
    global SERVER, CLIENT
    if len(sys.argv) != 3:
        print(__doc__)
        return 2
    SERVER, CLIENT = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    try:
        p = {"http": free_port(), "http2": free_port(), "grpc": free_port(), "tcp": free_port()}
    except OSError as e:
        print("loopback unusable: %s" % e)
        return 77
    srv = Server(["--port=%d" % p["http"], "--port", str(p["http2"]), "--grpc=%d" % p["grpc"],
                  "--tcp=%d" % p["tcp"], "--bind=127.0.0.1", "--unknown-flag=1"],
                 env_extra={"SERVICE_VERSION": "v-test", "HOSTNAME": "echo-test-pod"},
                 wait=[p["http"], p["http2"], p["grpc"], p["tcp"]])
    check("unknown argument" in srv.text(), "no warning for an unknown argument")
    tests = [lambda: test_http1_basic(p), lambda: test_keepalive(srv, p),
             lambda: test_host_override(p), lambda: test_codes(p), lambda: test_fail_first(p),
             lambda: test_delay(p), lambda: test_headers_knob(p), lambda: test_h2(p),
             lambda: test_body(p), lambda: test_chunked_and_pipelined(p),
             lambda: test_hostile(srv, p), lambda: test_tcp(p), lambda: test_client_errors(p)]
    try:
        for t in tests:
            t()
        with tempfile.TemporaryDirectory() as d:
            test_tls(d)
        test_tls_fallback()
        test_ipv6()
    finally:
        rc = srv.stop()
    check(rc == 0, "echo-server exit status %s after SIGTERM" % rc)
    if FAILURES:
        print("--- echo-server log ---\n" + srv.text()[-4000:])
        print("%d check(s) failed" % len(FAILURES))
        return 1
    print("all echo checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
