#!/usr/bin/python3
"""A stand-in for ztunnel, to test the lab before the real daemon exists. NOT a data plane.

Accepts ztunnel's lab flags (--config-dir, --node-name, --ca-cert, --ca-key, --log-format;
others are ignored), serves 200 on 127.0.0.1:15021/healthz/ready in its netns, the part of
ztunnel's /config_dump the lab reads on 127.0.0.1:15000 (the pods and Services of the config
dir as it last read them), and, so the
lab's "enrolled pods have 15008" wait can be exercised, opens a listener on port 15008 inside
the netns of every enrolled pod of its node (found through the config dir, like the real one:
Pod spec.nodeName, annotation gammamesh.io/netns, label gammamesh.io/dataplane-mode). Its
listeners accept connections and close them at once.
"""

import argparse
import http.server
import json
import os
import signal
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))

from gmlab import topology, yamlish  # noqa: E402

MESH_LABEL = "gammamesh.io/dataplane-mode"


def log(msg):
    print("fake-ztunnel: " + msg, flush=True)


SNAPSHOT = {"workloads": [], "services": []}


class Handler(http.server.BaseHTTPRequestHandler):
    """Both listeners: 127.0.0.1:15021 /healthz/ready and 127.0.0.1:15000 /config_dump."""

    def do_GET(self):
        pages = {"/healthz/ready": lambda: b"ready\n",
                 "/config_dump": lambda: json.dumps({"snapshot": SNAPSHOT}).encode()}
        page = pages.get(self.path)
        body = page() if page else b"not found\n"
        self.send_response(200 if page else 404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def snapshot(objs):
    """Pods (with their Ready condition) and Service VIPs, as ztunnel's /config_dump has them."""
    wls, svcs = [], []
    for o in objs:
        meta = o.get("metadata", {})
        if o.get("kind") == "Pod":
            conds = (o.get("status") or {}).get("conditions") or []
            ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conds)
            wls.append({"namespace": meta.get("namespace"), "name": meta.get("name"),
                        "ready": ready})
        elif o.get("kind") == "Service":
            svcs.append({"namespace": meta.get("namespace"), "name": meta.get("name"),
                         "vip": (o.get("spec") or {}).get("clusterIP")})
    return {"workloads": wls, "services": svcs}


def read_objects(config_dir):
    """Every object in the config dir (files that fail to parse are skipped)."""
    objs = []
    for f in sorted(os.listdir(config_dir)):
        if not f.endswith(".yaml"):
            continue
        try:
            with open(os.path.join(config_dir, f)) as fh:
                objs += [yamlish.plain(d) for _, d in yamlish.load_all(fh.read(), f)]
        except (OSError, yamlish.YamlError) as e:
            log("skipping %s: %s" % (f, e))
    return objs


def enrolled_pods(objs, node):
    """{netns: "ns/name"} of the enrolled pods on this node."""
    ns_mode = {o["metadata"]["name"]: (o["metadata"].get("labels") or {}).get(MESH_LABEL)
               for o in objs if o.get("kind") == "Namespace"}
    out = {}
    for o in objs:
        if o.get("kind") != "Pod" or o.get("spec", {}).get("nodeName") != node:
            continue
        meta = o["metadata"]
        mode = (meta.get("labels") or {}).get(MESH_LABEL) or ns_mode.get(meta["namespace"])
        netns = (meta.get("annotations") or {}).get("gammamesh.io/netns")
        if mode == "ambient" and netns:
            out[netns] = "%s/%s" % (meta["namespace"], meta["name"])
    return out


def serve(sock):
    while True:
        try:
            conn, _ = sock.accept()
        except OSError:
            return
        conn.close()


def netns_id(netns):
    try:
        st = os.stat(os.path.join(topology.NETNS_DIR, netns))
        return (st.st_dev, st.st_ino)
    except OSError:
        return None


def open_listener(netns):
    s = topology.netns_socket(netns)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", 15008))
    s.listen(16)
    threading.Thread(target=serve, args=(s,), daemon=True).start()
    return s


def main():
    p = argparse.ArgumentParser()
    for flag in ("--config-dir", "--node-name", "--ca-cert", "--ca-key", "--log-format"):
        p.add_argument(flag, required=flag != "--log-format")
    args, unknown = p.parse_known_args()
    for f in (args.ca_cert, args.ca_key):
        if not os.path.exists(f):
            sys.exit("fake-ztunnel: missing %s" % f)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    log("node %s, config %s, ignoring %s" % (args.node_name, args.config_dir, unknown))
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 15021), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    adm = http.server.ThreadingHTTPServer(("127.0.0.1", 15000), Handler)
    threading.Thread(target=adm.serve_forever, daemon=True).start()
    listeners = {}
    while True:
        objs = read_objects(args.config_dir)
        SNAPSHOT.update(snapshot(objs))
        want = enrolled_pods(objs, args.node_name)
        # a namespace replaced under the same name (`lab recreate-sandbox`) is listened in again
        gone = [n for n in listeners if n not in want or netns_id(n) != listeners[n][1]]
        for netns in gone:
            listeners.pop(netns)[0].close()
            log("closed 15008 in %s" % netns)
        for netns, pod in want.items():
            if netns not in listeners:
                try:
                    listeners[netns] = (open_listener(netns), netns_id(netns))
                    log("listening on 15008 in %s for %s" % (netns, pod))
                except OSError as e:
                    log("cannot listen in %s for %s: %s" % (netns, pod, e))
        time.sleep(0.3)


if __name__ == "__main__":
    main()
