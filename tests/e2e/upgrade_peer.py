#!/usr/bin/python3
"""Both ends of an HTTP/1.1 Upgrade for the waypoint's tests (standard library only).

    upgrade_peer.py server ADDR PORT
        An HTTP/1.1 server. A request asking for `Upgrade: websocket` (with Connection: upgrade)
        gets 101 and then an echo in upper case until the client's end, then BYE and our end.
        /refuse answers 426 instead, /unasked answers 101 to any request (one not asked for),
        /other-proto switches to h2c (not what was asked), /server-ends sends BYE right after the
        101 and closes. Any other request without the
        upgrade gets 426. Prints "ready", then one JSON line per request head:
        {"line": request line, "fields": {lower-case name: [values]}}.

    upgrade_peer.py client HOST PORT SIZE
        Asks for websocket on GET /ws, sends SIZE bytes (while reading the echo) and its end, reads
        to the end. Prints one JSON line: the response head, the SHA-256 of what came back and of
        what should have (the bytes in upper case, then BYE), and the count.
"""
import hashlib
import json
import socket
import sys
import threading

UPGRADE_101 = (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               b"X-Backend: upgrade-server\r\n\r\n")
REFUSAL_426 = (b"HTTP/1.1 426 Upgrade Required\r\nContent-Length: 3\r\nConnection: close\r\n\r\n"
               b"no\n")


def recv_head(s):
    """(the bytes of an HTTP head without its blank line, what came after it); (None, b"") when
    the peer ended before a whole head."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        d = s.recv(4096)
        if not d:
            return None, b""
        buf += d
    head, _, rest = buf.partition(b"\r\n\r\n")
    return head, rest


def recv_all(s):
    out = b""
    while True:
        d = s.recv(65536)
        if not d:
            return out
        out += d


def serve(conn, lock):
    with conn:
        head, rest = recv_head(conn)
        if head is None:
            return
        lines = head.decode("latin-1").split("\r\n")
        fields = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            fields.setdefault(k.strip().lower(), []).append(v.strip())
        with lock:
            print(json.dumps({"line": lines[0], "fields": fields}), flush=True)
        path = lines[0].split(" ")[1] if len(lines[0].split(" ")) > 1 else "/"
        asked = ("upgrade" in ",".join(fields.get("connection", [])).lower() and
                 fields.get("upgrade") == ["websocket"])
        try:
            if path.startswith("/refuse") or not (asked or path.startswith("/unasked")):
                conn.sendall(REFUSAL_426)
                return
            if path.startswith("/other-proto"):
                conn.sendall(UPGRADE_101.replace(b"Upgrade: websocket", b"Upgrade: h2c"))
                return
            conn.sendall(UPGRADE_101)
            if path.startswith("/server-ends"):
                conn.sendall(b"BYE")
                return
            if rest:
                conn.sendall(rest.upper())
            while True:
                d = conn.recv(65536)
                if not d:
                    break
                conn.sendall(d.upper())
            conn.sendall(b"BYE")
            conn.shutdown(socket.SHUT_WR)
        except OSError:
            return  # the peer is gone (it may have refused a 101 it had not asked for)


def server(addr, port):
    srv = socket.create_server((addr, port))
    lock = threading.Lock()
    print("ready", flush=True)
    while True:
        conn, _ = srv.accept()
        threading.Thread(target=serve, args=(conn, lock), daemon=True).start()


def client(host, port, size):
    s = socket.create_connection((host, port), timeout=30)
    s.sendall(b"GET /ws HTTP/1.1\r\nHost: ws\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
    head, rest = recv_head(s)
    data = bytes(97 + i % 26 for i in range(size))

    def send():
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
    got = b""
    if head is not None and head.startswith(b"HTTP/1.1 101"):
        t = threading.Thread(target=send)
        t.start()
        got = rest + recv_all(s)
        t.join()
    print(json.dumps({"head": (head or b"").decode("latin-1"), "n": len(got),
                      "got": hashlib.sha256(got).hexdigest(),
                      "want": hashlib.sha256(data.upper() + b"BYE").hexdigest()}))


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "server":
        server(sys.argv[2], int(sys.argv[3]))
    elif len(sys.argv) == 5 and sys.argv[1] == "client":
        client(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    else:
        sys.exit(__doc__)
