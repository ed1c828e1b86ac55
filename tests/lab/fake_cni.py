#!/usr/bin/python3
"""A stand-in for the gammamesh-cni plugin (GMLAB_CNI_PLUGIN=tests/lab/fake_cni.py), to test
the lab's CNI gate without the C binaries. NOT the plugin.

It speaks the plugin's side of the contract in short: VERSION; ADD and CHECK ask ztunnel over
the netconf's `socket` (one JSON line each way) and print prevResult on captured/not_enrolled,
a CNI error otherwise; no socket → fail open; DEL tells ztunnel, best effort, exit 0.

For the lab's tests:
  GMLAB_FAKE_CNI_RECORD=FILE     append one JSON line per call: the CNI_* environment, the
                                 network config, ztunnel's reply, and what the sandbox held
                                 (processes in CNI_NETNS when the call began and when it
                                 answered; the pod's object in the lab's config dir, found
                                 through GMLAB_RUN, when it began)
  GMLAB_FAKE_CNI_FAIL_FILE=FILE  while FILE exists, ADD fails with its content as the msg
"""

import json
import os
import socket
import sys
import time

VERSIONS = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]


def cni_args():
    out = {}
    for kv in os.environ.get("CNI_ARGS", "").split(";"):
        k, sep, v = kv.partition("=")
        if sep:
            out[k] = v
    return out


def fail(version, code, msg, details=""):
    print(json.dumps({"cniVersion": version, "code": code, "msg": msg, "details": details}))
    sys.exit(1)


def pids_in(netns_path):
    """PIDs whose network namespace is the one at netns_path."""
    try:
        want = os.stat(netns_path)
    except OSError:
        return []
    pids = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            st = os.stat("/proc/%s/ns/net" % p)
        except OSError:
            continue
        if (st.st_dev, st.st_ino) == (want.st_dev, want.st_ino):
            pids.append(int(p))
    return pids


def config_object(ns, name):
    """The pod's config-dir file as text, if the lab (GMLAB_RUN) has one."""
    run = os.environ.get("GMLAB_RUN")
    if not run:
        return None
    try:
        with open(os.path.join(run, "config", "pod-%s-%s.yaml" % (ns, name))) as f:
            return f.read()
    except OSError:
        return None


def ask(sock_path, req, timeout):
    """ztunnel's reply dict, or None when there is no socket / the connection is refused."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(sock_path)
    except (FileNotFoundError, ConnectionRefusedError):
        return None
    with s:
        s.sendall((json.dumps(req) + "\n").encode())
        data = b""
        while not data.endswith(b"\n"):
            b = s.recv(65536)
            if not b:
                break
            data += b
    return json.loads(data)


def main():
    cmd = os.environ.get("CNI_COMMAND", "")
    if cmd == "VERSION":
        print(json.dumps({"cniVersion": "1.1.0", "supportedVersions": VERSIONS}))
        return 0
    if cmd in ("STATUS", "GC"):
        return 0
    try:
        conf = json.loads(sys.stdin.read())
    except ValueError as e:
        fail("1.0.0", 6, "decoding failure", str(e))
    version = conf.get("cniVersion", "1.0.0")
    if cmd not in ("ADD", "DEL", "CHECK"):
        fail(version, 4, "invalid env", "CNI_COMMAND=%r" % cmd)
    args = cni_args()
    netns = os.environ.get("CNI_NETNS", "")
    prev = conf.get("prevResult") or {"cniVersion": version}
    req = {"command": cmd, "container_id": os.environ.get("CNI_CONTAINERID", ""),
           "netns": netns, "namespace": args.get("K8S_POD_NAMESPACE", ""),
           "pod": args.get("K8S_POD_NAME", ""), "uid": args.get("K8S_POD_UID", ""),
           "ips": [ip["address"].split("/")[0] for ip in prev.get("ips") or []]}
    record = {"time": time.time(), "env": {k: v for k, v in os.environ.items()
                                           if k.startswith("CNI_")},
              "conf": conf, "pids_in_netns": pids_in(netns),
              "config_object": config_object(req["namespace"], req["pod"])}
    fail_file = os.environ.get("GMLAB_FAKE_CNI_FAIL_FILE")
    reply = None
    if cmd == "ADD" and fail_file and os.path.exists(fail_file):
        with open(fail_file) as f:
            record["failed"] = f.read().strip()
    elif req["pod"]:
        try:
            reply = ask(conf.get("socket", "/var/run/gammamesh/cni.sock"), req,
                        conf.get("timeout_seconds", 30) if cmd != "DEL" else 5)
        except (OSError, ValueError) as e:
            reply = {"result": "error", "message": "ztunnel: %s" % e}
    record["reply"] = reply
    record["pids_in_netns_at_exit"] = pids_in(netns)
    path = os.environ.get("GMLAB_FAKE_CNI_RECORD")
    if path:
        with open(path, "a") as f:
            f.write(json.dumps(record) + "\n")
    if cmd == "DEL":
        return 0
    if "failed" in record:
        fail(version, 999, record["failed"])
    if reply is None:
        print("fake-cni: warning: ztunnel is not reachable; not holding the pod",
              file=sys.stderr)
    elif reply.get("result") not in ("captured", "not_enrolled"):
        fail(version, 999, reply.get("message") or "ztunnel said %s" % reply.get("result"))
    print(json.dumps(prev))
    return 0


if __name__ == "__main__":
    sys.exit(main())
