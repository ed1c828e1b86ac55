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

With --cni-socket PATH it answers the CNI gate's socket protocol (one JSON line each way): ADD
waits until the config dir has the pod, answers not_enrolled for a pod that is not enrolled or
not on its node, else opens 15008 in the request's netns first and answers captured; DEL
answers ok; CHECK says whether it listens there. It logs "cni: ADD pod=NS/NAME
result=…" like the real one.
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


class Listeners:
    """{netns name: (socket, (dev, ino))} shared by the config loop and the CNI socket."""

    def __init__(self):
        self.lock = threading.Lock()
        self.by_netns = {}

    def ensure(self, netns, pod):
        """Listen on 15008 in netns (a name or a path); replaces a listener in a namespace that
        was re-created under the same name. Raises OSError."""
        name = os.path.basename(netns)
        with self.lock:
            have = self.by_netns.get(name)
            if have and have[1] == netns_id(name):
                return
            if have:
                have[0].close()
            self.by_netns[name] = (open_listener(name), netns_id(name))
            log("listening on 15008 in %s for %s" % (name, pod))

    def sync(self, want):
        with self.lock:
            gone = [n for n in self.by_netns
                    if n not in want or netns_id(n) != self.by_netns[n][1]]
            for netns in gone:
                self.by_netns.pop(netns)[0].close()
                log("closed 15008 in %s" % netns)
        for netns, pod in want.items():
            try:
                self.ensure(netns, pod)
            except OSError as e:
                log("cannot listen in %s for %s: %s" % (netns, pod, e))

    def has(self, netns):
        name = os.path.basename(netns)
        with self.lock:
            have = self.by_netns.get(name)
            return bool(have) and have[1] == netns_id(name)


def cni_answer(req, args, listeners):
    """The reply to one CNI request (see the module's docstring)."""
    cmd = req.get("command")
    if cmd == "DEL":
        return {"result": "ok", "message": ""}
    if cmd not in ("ADD", "CHECK") or not req.get("netns"):
        return {"result": "error", "message": "bad request"}
    key = "%s/%s" % (req.get("namespace"), req.get("pod"))
    deadline = time.monotonic() + 30
    while True:
        objs = read_objects(args.config_dir)
        pod = [o for o in objs if o.get("kind") == "Pod" and "%s/%s" % (
            o["metadata"].get("namespace"), o["metadata"].get("name")) == key
            and (not req.get("uid") or o["metadata"].get("uid") == req["uid"])]
        if pod:
            break
        if time.monotonic() > deadline:
            return {"result": "error", "message": "pod %s is not in the snapshot" % key}
        time.sleep(0.1)
    if "%s/%s" % (pod[0]["metadata"]["namespace"], pod[0]["metadata"]["name"]) not in \
            enrolled_pods(objs, args.node_name).values():
        return {"result": "not_enrolled", "message": ""}
    if cmd == "CHECK":
        ok = listeners.has(req["netns"])
        return {"result": "captured" if ok else "error", "message": "" if ok else "not captured"}
    try:
        listeners.ensure(req["netns"], key)
    except OSError as e:
        return {"result": "error", "message": "cannot listen in %s: %s" % (req["netns"], e)}
    return {"result": "captured", "message": ""}


def cni_conn(conn, args, listeners):
    with conn:
        data = b""
        while not data.endswith(b"\n") and len(data) < 65536:
            b = conn.recv(65536)
            if not b:
                break
            data += b
        try:
            req = json.loads(data)
            reply = cni_answer(req, args, listeners)
        except ValueError as e:
            req, reply = {}, {"result": "error", "message": "bad request: %s" % e}
        log("cni: %s pod=%s/%s netns=%s result=%s"
            % (req.get("command"), req.get("namespace"), req.get("pod"), req.get("netns"),
               reply["result"]))
        try:
            conn.sendall((json.dumps(reply) + "\n").encode())
        except OSError:
            pass


def serve_cni(path, args, listeners):
    if os.path.exists(path):
        os.unlink(path)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o077)
    try:
        s.bind(path)
    finally:
        os.umask(old)
    s.listen(64)
    log("cni: listening on %s" % path)
    while True:
        conn, _ = s.accept()
        threading.Thread(target=cni_conn, args=(conn, args, listeners), daemon=True).start()


def main():
    p = argparse.ArgumentParser()
    for flag in ("--config-dir", "--node-name", "--ca-cert", "--ca-key", "--log-format",
                 "--cni-socket"):
        p.add_argument(flag, required=flag not in ("--log-format", "--cni-socket"))
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
    listeners = Listeners()
    if args.cni_socket:
        threading.Thread(target=serve_cni, args=(args.cni_socket, args, listeners),
                         daemon=True).start()
    while True:
        objs = read_objects(args.config_dir)
        SNAPSHOT.update(snapshot(objs))
        # a namespace replaced under the same name (`lab recreate-sandbox`) is listened in again
        listeners.sync(enrolled_pods(objs, args.node_name))
        time.sleep(0.3)


if __name__ == "__main__":
    main()
