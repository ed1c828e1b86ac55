#!/usr/bin/python3
"""A stand-in for tests/echo/echo-server, to test the lab before the real one exists.

Understands --port, --grpc and --tls (HTTP/1.1 on each, no TLS) and --tcp (raw echo), as
--flag=N[,N] or --flag N; other flags are ignored. Like the image, --port defaults to 8080
and --grpc to 7070 when not given. HTTP replies are Istio-echo-like text lines:
ServiceVersion, ServicePort, Host, Method, URL, IP (peer), Hostname.
"""

import http.server
import os
import re
import signal
import socketserver
import sys
import threading


def http_handler(port):
    class Echo(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            body = "".join("%s=%s\n" % kv for kv in [
                ("ServiceVersion", os.environ.get("SERVICE_VERSION", "")),
                ("ServicePort", port), ("Host", self.headers.get("Host", "")),
                ("Method", self.command), ("URL", self.path),
                ("IP", self.client_address[0]), ("Hostname", os.environ.get("HOSTNAME", ""))])
            data = body.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, fmt, *args):
            print("fake-echo: %s %s" % (self.client_address[0], fmt % args), flush=True)

    return Echo


class TcpEcho(socketserver.BaseRequestHandler):
    def handle(self):
        while True:
            data = self.request.recv(65536)
            if not data:
                return
            self.request.sendall(data)


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


def main():
    args = " ".join(sys.argv[1:])
    flags = {f: [int(p) for v in re.findall(r"--%s[= ]([0-9,]+)" % f, args)
                 for p in v.split(",") if p]
             for f in ("port", "grpc", "tls", "tcp")}
    http_ports = (flags["port"] or [8080]) + (flags["grpc"] or [7070]) + flags["tls"]
    tcp_ports = flags["tcp"]
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    servers = [Server(("0.0.0.0", p), http_handler(p)) for p in sorted(set(http_ports))]
    servers += [Server(("0.0.0.0", p), TcpEcho) for p in sorted(set(tcp_ports))]
    for s in servers:
        threading.Thread(target=s.serve_forever, daemon=True).start()
    print("fake-echo: %s listening on http %s tcp %s"
          % (os.environ.get("HOSTNAME"), http_ports, tcp_ports), flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
