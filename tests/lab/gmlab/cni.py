"""The CNI gate (`GMLAB_CNI=1 lab up`): the lab runs the gammamesh-cni plugin for every pod
sandbox as kubelet does for a chained plugin, and starts a pod's programs only once ADD
succeeded (the contract: ztunnel/cni_proto.h and the top README; the lab side: README.md here).

Environment (read at `lab up`, kept in the state):
  GMLAB_CNI=1       turn the gate on: each node's ztunnel gets `--cni-socket <run>/cni/nodeK.sock`
  GMLAB_CNI_PLUGIN  the plugin (default <build>/ztunnel/gammamesh-cni)

This module holds the pure parts (the plugin's environment and network config, the reading of
its answer) and the one function that runs it.
"""

import json
import os
import secrets
import stat
import subprocess
import threading

from .util import now_rfc3339

CNI_VERSION = "1.0.0"
NETWORK_NAME = "gmlab"
IFNAME = "eth0"
ADD_TIMEOUT_MAX = 30          # timeout_seconds handed to ADD, at most (the contract's default)
DEL_TIMEOUT = 5               # DEL is best effort
SUN_PATH_MAX = 107            # sockaddr_un.sun_path without its NUL

_log_lock = threading.Lock()


def requested():
    """Does the environment of `lab up` ask for the gate?"""
    return os.environ.get("GMLAB_CNI", "") not in ("", "0")


def plugin_path(build):
    return os.path.abspath(os.environ.get("GMLAB_CNI_PLUGIN")
                           or os.path.join(build, "ztunnel", "gammamesh-cni"))


def socket_path(cni_dir, node):
    return os.path.join(cni_dir, "%s.sock" % node)


def new_config(cni_dir, build, node_names):
    """What the state records about the gate (`st["cni"]`; absent when the gate is off)."""
    return {"plugin": plugin_path(build), "dir": cni_dir,
            "sockets": {n: socket_path(cni_dir, n) for n in node_names}}


def new_container_id():
    """A fresh sandbox id, 64 hex digits like containerd's."""
    return secrets.token_hex(32)


def netns_path(netns_dir, netns):
    return os.path.join(netns_dir, netns)


def invocation(cfg, command, rec, node, netns_file, timeout_seconds):
    """(extra environment, stdin text) of one plugin call for the pod record `rec`, as kubelet
    (through libcni) makes it for a chained plugin: CNI_* variables and the network config with
    the previous plugin's result (the pod's address on eth0 in its sandbox)."""
    env = {
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": rec["cni_id"],
        "CNI_NETNS": netns_file,
        "CNI_IFNAME": IFNAME,
        "CNI_PATH": os.path.dirname(cfg["plugin"]),
        "CNI_ARGS": "IgnoreUnknown=1;K8S_POD_NAMESPACE=%s;K8S_POD_NAME=%s;"
                    "K8S_POD_INFRA_CONTAINER_ID=%s;K8S_POD_UID=%s"
                    % (rec["ns"], rec["name"], rec["cni_id"], rec["uid"]),
    }
    conf = {
        "cniVersion": CNI_VERSION, "name": NETWORK_NAME, "type": "gammamesh-cni",
        "socket": cfg["sockets"][node], "timeout_seconds": int(timeout_seconds),
        "prevResult": {
            "cniVersion": CNI_VERSION,
            "interfaces": [{"name": IFNAME, "sandbox": netns_file}],
            "ips": [{"address": "%s/32" % rec["ip"], "interface": 0}],
        },
    }
    return env, json.dumps(conf) + "\n"


def failure_message(rc, stdout, stderr):
    """The reason a plugin call failed: the CNI error's msg (and details) from stdout, else the
    end of stderr, else the exit status."""
    try:
        err = json.loads(stdout)
    except ValueError:
        err = None
    if isinstance(err, dict) and err.get("msg"):
        msg = str(err["msg"])
        if err.get("details") and str(err["details"]) not in msg:
            msg += " (%s)" % err["details"]
        return msg
    lines = [l for l in (stderr or "").strip().splitlines() if l.strip()]
    return lines[-1].strip() if lines else "exit status %s, no CNI error on stdout" % rc


def socket_ready(path):
    try:
        return stat.S_ISSOCK(os.stat(path).st_mode)
    except OSError:
        return False


def run_plugin(cfg, env_extra, stdin, timeout, log_path, what):
    """Run the plugin once: (exit status or None when it was killed, stdout, stderr). Every
    call is appended to log_path (the lab's cni.log)."""
    env = dict(os.environ)
    env.update(env_extra)
    try:
        res = subprocess.run([cfg["plugin"]], input=stdin, env=env, capture_output=True,
                             text=True, timeout=timeout, cwd="/")
        rc, out, err = res.returncode, res.stdout, res.stderr
    except subprocess.TimeoutExpired as e:
        rc = None
        out = _text(e.stdout)
        err = _text(e.stderr) + "\nlab: %s did not exit within %ss; killed" % (
            os.path.basename(cfg["plugin"]), timeout)
    except OSError as e:
        rc, out, err = None, "", "lab: cannot run %s: %s" % (cfg["plugin"], e)
    _log(log_path, what, env_extra, rc, out, err)
    return rc, out, err


def _text(b):
    if b is None:
        return ""
    return b.decode(errors="replace") if isinstance(b, bytes) else b


def _log(path, what, env, rc, out, err):
    lines = ["%s %s %s container=%s netns=%s: exit %s"
             % (now_rfc3339(), env["CNI_COMMAND"], what, env["CNI_CONTAINERID"][:12],
                env["CNI_NETNS"], "killed" if rc is None else rc)]
    for name, text in (("stdout", out), ("stderr", err)):
        for line in (text or "").strip().splitlines()[:20]:
            lines.append("    %s: %s" % (name, line))
    try:
        with _log_lock, open(path, "a") as f:
            f.write("\n".join(lines) + "\n")
    except OSError:
        pass


def run_parallel(calls):
    """Run callables in threads (kubelet sets up sandboxes concurrently); their results in
    order."""
    out = [None] * len(calls)

    def one(i, fn):
        try:
            out[i] = fn()
        except Exception as e:      # noqa: BLE001 - reported as that call's failure
            out[i] = (None, "", "lab: %s: %s" % (type(e).__name__, e))
    threads = [threading.Thread(target=one, args=(i, fn)) for i, fn in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out
