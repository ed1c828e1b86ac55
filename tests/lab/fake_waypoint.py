#!/usr/bin/python3
"""A stand-in for the waypoint, to test the lab before the real one exists. NOT a proxy.

Accepts the waypoint's lab flags (--config-dir, --node-name, --ca-cert, --ca-key, --pod-name,
--pod-namespace; others are ignored) and listens on 0.0.0.0:15008 in the netns it was started
in, closing every connection at once.
"""

import argparse
import signal
import socket
import sys


def main():
    p = argparse.ArgumentParser()
    for flag in ("--config-dir", "--node-name", "--ca-cert", "--ca-key", "--pod-name",
                 "--pod-namespace"):
        p.add_argument(flag, required=True)
    args, unknown = p.parse_known_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", 15008))
    s.listen(16)
    print("fake-waypoint: %s/%s on %s listening on 15008 (ignoring %s)"
          % (args.pod_namespace, args.pod_name, args.node_name, unknown), flush=True)
    while True:
        conn, _ = s.accept()
        conn.close()


if __name__ == "__main__":
    main()
