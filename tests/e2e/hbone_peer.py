#!/usr/bin/python3
"""An independent HBONE peer (DESIGN.md §6), written with Debian's python3-h2 and Python's ssl,
sharing no code with gammamesh, to check the ztunnel's wire format against something else.

    hbone_peer.py client --connect IP:15008 --authority IP:PORT --cert C --key K --ca CA
                         [--expect-identity SPIFFE-ID] [--send TEXT] [--no-half-close]
        Opens one TLS 1.3 connection (ALPN h2, client certificate, no SNI), checks the server's
        URI SAN against --expect-identity (refusing before any HTTP/2 when it does not match),
        sends one CONNECT (no :scheme/:path, `forwarded`, `traceparent`), then TEXT as DATA,
        then END_STREAM, and reads until the server ends the stream. Prints one JSON object.

    hbone_peer.py serve --listen ADDR:PORT --cert C --key K --ca CA --record FILE
                        [--trust-domain TD]
        Listens for HBONE (TLS 1.3, ALPN h2, client certificate required, client trust domain
        must be TD), checks every CONNECT, connects to its :authority and relays bytes with
        half-close. Every handshake, request, PING and stream end is appended to FILE as a
        JSON line.

Standard library plus `h2` only; run with /usr/bin/python3 (where Debian installs python3-h2).
"""

import argparse
import hashlib
import ipaddress
import json
import os
import re
import secrets
import selectors
import signal
import socket
import ssl
import sys
import threading
import time

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings

HBONE_STREAM_WINDOW = 4 << 20        # DESIGN.md §6: 4 MiB stream, 16 MiB connection window
HBONE_CONN_WINDOW = 16 << 20
IO_CHUNK = 64 << 10
FORWARDED_FOR = re.compile(r'(?:^|[;,\s])for="?([^";,]+)"?', re.IGNORECASE)

# ---------------------------------------------------------------------------------------------
# identities and addresses


def parse_spiffe(uri):
    """(trust domain, namespace, service account) for exactly spiffe://TD/ns/NS/sa/SA."""
    if not uri.startswith("spiffe://"):
        return None
    parts = uri[len("spiffe://"):].split("/")
    if len(parts) != 5 or parts[1] != "ns" or parts[3] != "sa" or not all(parts):
        return None
    return parts[0], parts[2], parts[4]


def uri_sans(tls):
    """The URI SANs of the verified peer certificate ([] if none)."""
    cert = tls.getpeercert() or {}
    return [v for k, v in cert.get("subjectAltName", ()) if k == "URI"]


def parse_hostport(text):
    """(ip, port) from "a.b.c.d:p" or "[v6]:p"; None if malformed."""
    m = re.fullmatch(r"\[([^\]]+)\]:(\d+)|([^:\[\]]+):(\d+)", text or "")
    if not m:
        return None
    host, port = (m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4))
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None
    port = int(port)
    if not 0 < port < 65536:
        return None
    return str(ip), port


def hostport(ip, port):
    return "[%s]:%d" % (ip, port) if ":" in ip else "%s:%d" % (ip, port)


def tls_facts(tls):
    cipher = tls.cipher()
    return {"version": tls.version(), "cipher": cipher[0] if cipher else None,
            "alpn": tls.selected_alpn_protocol(), "peer_identities": uri_sans(tls)}


def base_context(purpose, cert, key, ca):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT if purpose == "client"
                         else ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.maximum_version = ssl.TLSVersion.TLSv1_3
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_REQUIRED      # the server requires a client certificate too
    ctx.load_verify_locations(ca)
    ctx.load_cert_chain(cert, key)
    ctx.set_alpn_protocols(["h2"])
    ctx.options |= ssl.OP_NO_TICKET           # no resumption, as ztunnel
    return ctx


# ---------------------------------------------------------------------------------------------
# one TLS connection carrying HTTP/2, non-blocking


class H2Wire:
    """Moves bytes between a non-blocking TLS socket and an h2 state machine."""

    def __init__(self, tls, conn):
        self.tls = tls
        self.h2 = conn
        self.out = bytearray()
        self.eof = False
        tls.setblocking(False)

    def queue(self):
        self.out += self.h2.data_to_send()

    def send_some(self):
        while self.out:
            try:
                n = self.tls.send(self.out[:IO_CHUNK])
            except (ssl.SSLWantWriteError, ssl.SSLWantReadError, BlockingIOError):
                return
            del self.out[:n]

    def receive(self):
        """Every h2 event from what the socket has now (sets eof at end of stream)."""
        events = []
        while not self.eof:
            try:
                data = self.tls.recv(IO_CHUNK)
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
                break
            except ssl.SSLZeroReturnError:
                data = b""
            if not data:
                self.eof = True
                break
            events += self.h2.receive_data(data)
        return events


def h2_conn(client_side):
    if client_side:
        cfg = h2.config.H2Configuration(client_side=True, validate_outbound_headers=False,
                                        header_encoding="utf-8")
    else:
        cfg = h2.config.H2Configuration(client_side=False, validate_inbound_headers=False,
                                        header_encoding="utf-8")
    conn = h2.connection.H2Connection(config=cfg)
    conn.initiate_connection()
    settings = {h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: HBONE_STREAM_WINDOW}
    if client_side:
        settings[h2.settings.SettingCodes.ENABLE_PUSH] = 0
    else:
        settings[h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS] = 200
    conn.update_settings(settings)
    conn.increment_flow_control_window(HBONE_CONN_WINDOW - 65535)
    return conn


def keep_open_after_goaway(conn):
    """A GOAWAY only stops new streams: open ones run to completion (RFC 9113 §6.8). h2 4.1
    treats a received GOAWAY as the end of the connection and refuses any further frame, so
    put its connection state machine back to OPEN; this peer never opens a stream after it."""
    states = h2.connection.ConnectionState
    conn.state_machine.state = states.CLIENT_OPEN if conn.config.client_side \
        else states.SERVER_OPEN


# ---------------------------------------------------------------------------------------------
# client


def run_client(args):
    res = {"role": "client", "connect": args.connect, "authority": args.authority,
           "tls_error": None, "refused": None, "status": None, "response_headers": [],
           "server_spoke_h2": False, "received": "", "received_bytes": 0, "reset": None,
           "goaway": None, "ended": False, "error": None}
    ip, port = parse_hostport(args.connect)
    sock = socket.create_connection((ip, port), timeout=args.timeout)
    res["local"] = hostport(*sock.getsockname()[:2])
    ctx = base_context("client", args.cert, args.key, args.ca)
    tls = ctx.wrap_socket(sock, server_hostname=None, do_handshake_on_connect=False)
    try:
        tls.do_handshake()
    except (ssl.SSLError, OSError) as e:
        res["tls_error"] = "handshake: %s" % e
        tls.close()
        return res
    res.update(tls_facts(tls))
    if res["alpn"] != "h2":
        res["refused"] = "server did not select ALPN h2 (got %r)" % res["alpn"]
    elif args.expect_identity and args.expect_identity not in \
            [u for u in res["peer_identities"] if parse_spiffe(u)]:
        res["refused"] = "server identity %s is not the expected %s" \
            % (res["peer_identities"], args.expect_identity)
    if res["refused"]:
        tls.close()                  # nothing was sent: refused before any HTTP/2
        return res
    try:
        _client_stream(tls, args, res)
    except ssl.SSLError as e:
        res["tls_error"] = "after handshake: %s" % e
    except (OSError, h2.exceptions.ProtocolError) as e:
        res["error"] = "%s: %s" % (type(e).__name__, e)
    finally:
        tls.close()
    return res


def _client_stream(tls, args, res):
    wire = H2Wire(tls, h2_conn(client_side=True))
    sid = wire.h2.get_next_available_stream_id()
    headers = [(":method", "CONNECT"), (":authority", args.authority),
               ("forwarded", 'for="%s"' % res["local"]),
               ("traceparent", "00-%s-%s-01" % (secrets.token_hex(16), secrets.token_hex(8)))]
    wire.h2.send_headers(sid, headers)
    wire.queue()
    payload = args.send.encode()
    sent, half_closed = 0, False
    digest = hashlib.sha256()
    received = bytearray()
    deadline = time.monotonic() + args.timeout
    sel = selectors.DefaultSelector()
    sel.register(tls, selectors.EVENT_READ)
    while time.monotonic() < deadline and not res["ended"] and res["reset"] is None:
        if res["status"] == "200":
            while sent < len(payload):
                n = min(wire.h2.local_flow_control_window(sid), wire.h2.max_outbound_frame_size,
                        len(payload) - sent)
                if n <= 0:
                    break
                wire.h2.send_data(sid, payload[sent:sent + n])
                sent += n
            if sent == len(payload) and not half_closed and args.half_close:
                wire.h2.end_stream(sid)
                half_closed = True
            wire.queue()
        wire.send_some()
        sel.modify(tls, selectors.EVENT_READ | (selectors.EVENT_WRITE if wire.out else 0))
        if not tls.pending():
            sel.select(timeout=0.2)
        for ev in wire.receive():
            if isinstance(ev, (h2.events.RemoteSettingsChanged, h2.events.SettingsAcknowledged)):
                res["server_spoke_h2"] = True
            elif isinstance(ev, h2.events.ResponseReceived):
                res["server_spoke_h2"] = True
                res["response_headers"] = [list(h) for h in ev.headers]
                res["status"] = dict(ev.headers).get(":status")
                if res["status"] != "200":
                    res["ended"] = True
            elif isinstance(ev, h2.events.DataReceived):
                received += ev.data
                digest.update(ev.data)
                wire.h2.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, h2.events.StreamEnded):
                res["ended"] = True
            elif isinstance(ev, h2.events.StreamReset):
                res["reset"] = int(ev.error_code)
            elif isinstance(ev, h2.events.ConnectionTerminated):
                res["goaway"] = int(ev.error_code)
                if ev.last_stream_id is not None and ev.last_stream_id < sid:
                    res["reset"] = -1          # our stream was not processed
                else:
                    keep_open_after_goaway(wire.h2)
        wire.queue()
        wire.send_some()
        if wire.eof:
            break
    res["received"] = received.decode("latin-1")
    res["received_bytes"] = len(received)
    res["received_sha256"] = digest.hexdigest()
    res["sent_bytes"] = sent
    if not res["ended"] and res["reset"] is None and not wire.eof:
        res["error"] = "timed out"
    try:
        wire.h2.close_connection()
        wire.queue()
        tls.setblocking(True)
        tls.settimeout(1)
        tls.sendall(wire.out)
    except (OSError, h2.exceptions.ProtocolError):
        pass


# ---------------------------------------------------------------------------------------------
# server


class Recorder:
    def __init__(self, path):
        self.path = path
        self.lock = threading.Lock()

    def __call__(self, **fields):
        fields["t"] = round(time.time(), 3)
        with self.lock, open(self.path, "a") as f:
            f.write(json.dumps(fields, sort_keys=True) + "\n")
            f.flush()


class Upstream:
    """One CONNECT stream relayed to a TCP socket, with half-close both ways."""

    def __init__(self, sid, sock):
        self.sid = sid
        self.sock = sock
        self.to_app = bytearray()      # DATA not yet written to the app
        self.unacked = 0               # flow-controlled bytes to acknowledge once written
        self.peer_ended = False        # END_STREAM received
        self.app_shut = False          # shutdown(SHUT_WR) done towards the app
        self.app_eof = False           # the app sent FIN (END_STREAM sent)
        self.up_bytes = 0
        self.down_bytes = 0
        self.reset = None
        self.registered = False


def check_connect(headers, local_ip):
    """Problems with an HBONE CONNECT request (DESIGN.md §6), [] if none."""
    problems = []
    names = [k for k, _ in headers]
    pseudo = {k: v for k, v in headers if k.startswith(":")}
    if pseudo.get(":method") != "CONNECT":
        problems.append(":method is %r, not CONNECT" % pseudo.get(":method"))
    for bad in (":scheme", ":path", ":protocol"):
        if bad in pseudo:
            problems.append("%s present in a classic CONNECT" % bad)
    for k in set(names):
        if k.startswith(":") and names.count(k) > 1:
            problems.append("%s repeated" % k)
    target = parse_hostport(pseudo.get(":authority"))
    if target is None:
        problems.append(":authority %r is not ip:port" % pseudo.get(":authority"))
    elif target[0] != local_ip:
        problems.append(":authority %s is not this pod's address %s"
                        % (pseudo.get(":authority"), local_ip))
    fwd = [v for k, v in headers if k == "forwarded"]
    if not fwd:
        problems.append("no forwarded header")
    else:
        m = FORWARDED_FOR.search(fwd[0])
        if not m or parse_hostport(m.group(1)) is None:
            problems.append("forwarded %r has no for=\"ip:port\"" % fwd[0])
    return problems, target


class ServerConn:
    def __init__(self, tls, conn_id, record):
        self.tls = tls
        self.id = conn_id
        self.record = record
        self.wire = H2Wire(tls, h2_conn(client_side=False))
        self.streams = {}
        self.sel = selectors.DefaultSelector()
        self.local_ip = tls.getsockname()[0]
        self.peer = hostport(*tls.getpeername()[:2])

    def respond(self, sid, status, end=False):
        self.wire.h2.send_headers(sid, [(":status", str(status))], end_stream=end)

    def on_request(self, ev):
        headers = [(k, v) for k, v in ev.headers]
        problems, target = check_connect(headers, self.local_ip)
        entry = {"event": "connect", "conn": self.id, "stream": ev.stream_id,
                 "headers": [list(h) for h in headers], "problems": problems}
        if problems:
            self.respond(ev.stream_id, 400, end=True)
            self.record(status=400, **entry)
            return
        try:
            sock = socket.create_connection(target, timeout=5)
        except OSError as e:
            self.respond(ev.stream_id, 503, end=True)
            self.record(status=503, upstream_error=str(e), **entry)
            return
        sock.setblocking(False)
        up = Upstream(ev.stream_id, sock)
        self.streams[ev.stream_id] = up
        self.respond(ev.stream_id, 200)
        self.record(status=200, **entry)

    def on_event(self, ev):
        h = self.wire.h2
        if isinstance(ev, h2.events.RequestReceived):
            self.on_request(ev)
        elif isinstance(ev, h2.events.DataReceived):
            up = self.streams.get(ev.stream_id)
            if up is None:
                h.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                return
            up.to_app += ev.data
            up.unacked += ev.flow_controlled_length
            up.up_bytes += len(ev.data)
        elif isinstance(ev, h2.events.StreamEnded):
            up = self.streams.get(ev.stream_id)
            if up is not None:
                up.peer_ended = True
        elif isinstance(ev, h2.events.StreamReset):
            up = self.streams.get(ev.stream_id)
            if up is not None:
                up.reset = int(ev.error_code)
                self.finish(up)
        elif isinstance(ev, h2.events.ConnectionTerminated):
            self.record(event="goaway", conn=self.id, code=int(ev.error_code),
                        last_stream=ev.last_stream_id)
            keep_open_after_goaway(h)
        elif isinstance(ev, h2.events.PingReceived):      # h2 answers it by itself
            self.record(event="ping", conn=self.id)

    def pump_app(self, up, mask):
        h = self.wire.h2
        if mask & selectors.EVENT_WRITE and up.to_app:
            try:
                n = up.sock.send(up.to_app[:IO_CHUNK])
                del up.to_app[:n]
            except BlockingIOError:
                pass
            except OSError:
                self.finish(up, reset=True)
                return
        if not up.to_app and up.unacked:
            h.acknowledge_received_data(up.unacked, up.sid)
            up.unacked = 0
        if not up.to_app and up.peer_ended and not up.app_shut:
            try:
                up.sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            up.app_shut = True
        if mask & selectors.EVENT_READ and not up.app_eof:
            room = min(h.local_flow_control_window(up.sid), h.max_outbound_frame_size, IO_CHUNK)
            if room > 0:
                try:
                    data = up.sock.recv(room)
                except BlockingIOError:
                    data = None
                except OSError:
                    self.finish(up, reset=True)
                    return
                try:
                    if data:
                        h.send_data(up.sid, data)
                        up.down_bytes += len(data)
                    elif data == b"":
                        h.end_stream(up.sid)
                        up.app_eof = True
                except h2.exceptions.ProtocolError:
                    self.finish(up, reset=True)
                    return
        if up.app_eof and up.app_shut:
            self.finish(up)

    def finish(self, up, reset=False):
        if self.streams.pop(up.sid, None) is None:
            return
        if reset:
            try:
                self.wire.h2.reset_stream(up.sid)
            except h2.exceptions.ProtocolError:
                pass
        if up.registered:
            self.sel.unregister(up.sock)
            up.registered = False
        up.sock.close()
        self.record(event="stream_done", conn=self.id, stream=up.sid, bytes_up=up.up_bytes,
                    bytes_down=up.down_bytes, reset_by_peer=up.reset, reset=reset)

    def interest(self):
        """Socket interests: TLS writable when output is queued; an app socket readable while
        its stream has send window, writable while DATA waits for it."""
        h = self.wire.h2
        self.sel.modify(self.tls, selectors.EVENT_READ |
                        (selectors.EVENT_WRITE if self.wire.out else 0), None)
        for up in list(self.streams.values()):
            mask = selectors.EVENT_WRITE if up.to_app else 0
            if not up.app_eof:
                try:
                    if h.local_flow_control_window(up.sid) > 0:
                        mask |= selectors.EVENT_READ
                except h2.exceptions.ProtocolError:
                    pass
            if mask and up.registered:
                self.sel.modify(up.sock, mask, up)
            elif mask:
                self.sel.register(up.sock, mask, up)
            elif up.registered:
                self.sel.unregister(up.sock)
            up.registered = bool(mask)

    def run(self):
        self.sel.register(self.tls, selectors.EVENT_READ, None)
        self.wire.queue()
        while True:
            self.wire.send_some()
            self.interest()
            ready = [] if self.tls.pending() else self.sel.select(timeout=1.0)
            if self.tls.pending():
                ready.append((self.sel.get_key(self.tls), selectors.EVENT_READ))
            for key, mask in ready:
                if key.data is None:
                    if mask & selectors.EVENT_READ:
                        try:
                            events = self.wire.receive()
                        except (ssl.SSLError, OSError, h2.exceptions.ProtocolError) as e:
                            self.record(event="conn_error", conn=self.id, error=str(e))
                            events, self.wire.eof = [], True
                        for ev in events:
                            self.on_event(ev)
                elif key.data.sid in self.streams:
                    self.pump_app(key.data, mask)
            # acknowledge and shut down whatever became possible without socket events
            for up in list(self.streams.values()):
                self.pump_app(up, 0)
            self.wire.queue()
            if self.wire.eof:
                for up in list(self.streams.values()):
                    self.finish(up, reset=True)
                break
        self.record(event="conn_closed", conn=self.id)
        self.tls.close()


def serve_one(sock, addr, ctx, args, record, conn_id):
    sni = {}

    def on_sni(sslobj, name, _ctx):
        sni["name"] = name

    ctx.sni_callback = on_sni
    sock.settimeout(10)
    try:
        tls = ctx.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        tls.do_handshake()
    except (ssl.SSLError, OSError) as e:
        record(event="tls_error", conn=conn_id, peer=hostport(*addr[:2]), error=str(e))
        sock.close()
        return
    facts = tls_facts(tls)
    ids = [parse_spiffe(u) for u in facts["peer_identities"]]
    tds = {i[0] for i in ids if i}
    refused = None
    if facts["alpn"] != "h2":
        refused = "client did not negotiate ALPN h2"
    elif args.trust_domain not in tds:
        refused = "client trust domain %s is not %s" % (sorted(tds), args.trust_domain)
    record(event="tls", conn=conn_id, peer=hostport(*addr[:2]), sni=sni.get("name"),
           refused=refused, **facts)
    if refused:
        tls.close()
        return
    try:
        ServerConn(tls, conn_id, record).run()
    except Exception as e:       # keep serving other connections, but say what happened
        record(event="conn_error", conn=conn_id, error="%s: %s" % (type(e).__name__, e))
        tls.close()


def run_server(args):
    record = Recorder(args.record)
    host, port = args.listen.rsplit(":", 1)
    lsock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind((host.strip("[]"), int(port)))
    lsock.listen(128)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    record(event="listening", addr=args.listen)
    print("listening on %s" % args.listen, flush=True)
    n = 0
    while True:
        sock, addr = lsock.accept()
        n += 1
        # a context per connection: the SNI callback is per context
        ctx = base_context("server", args.cert, args.key, args.ca)
        threading.Thread(target=serve_one, args=(sock, addr, ctx, args, record, n),
                         daemon=True).start()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("client")
    c.add_argument("--connect", required=True)
    c.add_argument("--authority", required=True)
    c.add_argument("--expect-identity")
    c.add_argument("--send", default="")
    c.add_argument("--no-half-close", dest="half_close", action="store_false")
    c.add_argument("--timeout", type=float, default=10.0)
    s = sub.add_parser("serve")
    s.add_argument("--listen", required=True)
    s.add_argument("--record", required=True)
    s.add_argument("--trust-domain", default="cluster.local")
    for sp in (c, s):
        sp.add_argument("--cert", required=True)
        sp.add_argument("--key", required=True)
        sp.add_argument("--ca", required=True)
    args = p.parse_args(argv)
    if args.cmd == "client":
        try:
            res = run_client(args)
        except OSError as e:
            res = {"role": "client", "error": "connect: %s" % e, "status": None,
                   "tls_error": None}
        print(json.dumps(res, sort_keys=True))
        return 0
    run_server(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
