"""Command line of the lab: up, apply, delete, exec, recreate-sandbox, status, logs, down."""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time

from . import cni, manifest, procs, topology
from .ca import make_ca
from .cluster import Lab
from .manifest import LABEL_KEY, LABEL_VALUE
from .state import (Paths, build_dir, load, locked, netns_prefix, new_state, owns_netns,
                    programs, run_dir, save)
from .util import LabError, info, read_text, remove_file, run, warn
from .workloads import wait_ports

DEFAULT_TIMEOUT = 120
EXEC_LAB_ERROR = 125   # `lab exec` exit status for the lab's own errors (like `docker run`)
RUN_MARKER = ".gmlab-run"


def need_root():
    if os.geteuid() != 0:
        raise LabError("the lab must run as root (it creates network namespaces)")


def parse_ns_labels(items):
    labels = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not LABEL_KEY.match(key) or not LABEL_VALUE.match(value):
            raise LabError("--ns-label wants KEY=VALUE with a valid label, got %r" % item)
        labels[key] = value
    return labels


# ---------------------------------------------------------------------------------------------
# up / apply / delete


def cmd_up(args):
    need_root()
    if not 1 <= args.nodes <= topology.MAX_NODES:
        raise LabError("--nodes must be between 1 and %d" % topology.MAX_NODES)
    ns_labels = parse_ns_labels(args.ns_label)
    objs = manifest.load_files(args.files)
    build = build_dir()
    progs = programs(build)
    if not os.access(progs["ztunnel"], os.X_OK):
        raise LabError("ztunnel is not built: %s is missing (run `meson compile -C %s`, or set "
                       "GMLAB_ZTUNNEL)" % (progs["ztunnel"], build))
    paths, prefix = Paths(run_dir()), netns_prefix()
    st = new_state(paths, prefix, args.nodes, build, not os.path.isdir(paths.run))
    st["ns_labels"] = ns_labels
    st["api"] = args.api
    if cni.requested():
        st["cni"] = _cni_config(paths, build, args.nodes)
    lab = Lab(paths, st)
    lab.apply_objects(objs)
    lab.preflight()              # bad objects or missing programs: fail before building
    os.makedirs(paths.run, exist_ok=True)
    _write_marker(paths)
    with locked(paths):
        _refuse_if_up(paths, prefix)
        st["etc_netns_created"] = not os.path.isdir(topology.ETC_NETNS)
        paths.make_dirs()
        save(paths, st)
        make_ca(paths)
        _build_topology(paths, st)
        lab.reconcile()
        lab.start_ztunnels()
        lab.start_pending(time.monotonic() + args.timeout)
        lab.wait_ready(args.timeout)
        lab.save()
    info("lab is up: %d node(s), %d pod(s) ready, run dir %s"
         % (args.nodes, len(st["pods"]), paths.run))
    return 0


def _cni_config(paths, build, nodes):
    """GMLAB_CNI=1: the plugin must exist, and the sockets' paths fit in a sockaddr_un."""
    cfg = cni.new_config(paths.cni, build, [topology.node_name(k) for k in range(1, nodes + 1)])
    if not os.access(cfg["plugin"], os.X_OK):
        raise LabError("GMLAB_CNI=1 but the CNI plugin is not built: %s is missing (run "
                       "`meson compile -C %s`, or set GMLAB_CNI_PLUGIN)" % (cfg["plugin"], build))
    longest = max(cfg["sockets"].values(), key=len)
    if len(longest.encode()) > cni.SUN_PATH_MAX:
        raise LabError("GMLAB_CNI=1: the socket path %s is longer than %d bytes; use a shorter "
                       "GMLAB_RUN" % (longest, cni.SUN_PATH_MAX))
    return cfg


def _refuse_if_up(paths, prefix):
    if os.path.exists(paths.state):
        raise LabError("a lab is already up in %s; use `lab apply`, or `lab down` first"
                       % paths.run)
    left = [n for n in topology.list_netns() if owns_netns(prefix, n)]
    if left:
        raise LabError("network namespaces of an earlier lab still exist (%s); run `lab down` "
                       "first" % ", ".join(sorted(left)[:5]))


def _write_marker(paths):
    with open(os.path.join(paths.run, RUN_MARKER), "w") as f:
        f.write("run directory of a gammamesh lab; `lab down` removes it\n")


def _build_topology(paths, st):
    """Underlay and node namespaces, each recorded in the state before it is created."""
    prefix = st["prefix"]
    st["netns"].append(topology.underlay_name(prefix))
    save(paths, st)
    topology.create_underlay(prefix)
    for k in range(1, st["nodes"] + 1):
        st["netns"].append(topology.node_netns(prefix, k))
        save(paths, st)
        topology.create_node(prefix, k, st["nodes"])
    info("network up: %s + %d node(s)" % (topology.underlay_name(prefix), st["nodes"]))


def cmd_apply(args):
    need_root()
    objs = manifest.load_files(args.files)
    paths = Paths(run_dir())
    with locked(paths):
        lab = Lab(paths, load(paths))
        lab.apply_objects(objs)
        lab.reconcile()
        lab.start_pending(time.monotonic() + args.timeout)
        lab.save()
        if not args.no_wait:
            lab.wait_ready(args.timeout)
        lab.save()
    return 0


def cmd_delete(args):
    need_root()
    objs = manifest.load_files(args.files)
    paths = Paths(run_dir())
    with locked(paths):
        lab = Lab(paths, load(paths))
        lab.delete_objects(objs)
        lab.reconcile()
        lab.save()
    return 0


# ---------------------------------------------------------------------------------------------
# exec


def resolve_target(st, target):
    """The pod record for NAMESPACE/POD or NAMESPACE/LABEL=VALUE[,LABEL=VALUE…]."""
    ns, _, rest = target.partition("/")
    if not ns or not rest:
        raise LabError("target must be NAMESPACE/POD or NAMESPACE/LABEL=VALUE[,LABEL=VALUE], "
                       "got %r" % target)
    pods = st["pods"]
    if "=" not in rest:
        rec = pods.get("%s/%s" % (ns, rest))
        if rec is None:
            names = sorted(r["name"] for r in pods.values() if r["ns"] == ns)
            raise LabError("no pod %s/%s (pods in %s: %s)"
                           % (ns, rest, ns, ", ".join(names) or "none"))
        return rec
    selector = {}
    for kv in rest.split(","):
        k, sep, v = kv.partition("=")
        if not sep or not k:
            raise LabError("bad label selector %r in target %r" % (kv, target))
        selector[k] = v
    matching = sorted((r for r in pods.values() if r["ns"] == ns
                       and all(r["labels"].get(k) == v for k, v in selector.items())),
                      key=lambda r: r["name"])
    for rec in matching:
        if rec["ready"]:
            return rec
    if matching:
        raise LabError("no ready pod matches %s (not ready: %s)"
                       % (target, ", ".join(r["name"] for r in matching)))
    raise LabError("no pod matches %s" % target)


def cmd_exec(args):
    need_root()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        raise LabError("usage: lab exec TARGET -- CMD [ARG…]")
    st = load(Paths(run_dir()))
    rec = resolve_target(st, args.target)
    env = dict(os.environ)
    dirs = [st["programs"]["echo-dir"], os.path.dirname(st["programs"]["echo-server"])]
    env["PATH"] = ":".join(dict.fromkeys(dirs + [env.get("PATH", "/usr/bin:/bin")]))
    env["HOSTNAME"] = rec["name"]
    if "/" not in command[0] and shutil.which(command[0], path=env["PATH"]) is None:
        print("lab: %s: command not found" % command[0], file=sys.stderr)
        return 127
    rc = subprocess.call(["ip", "netns", "exec", rec["netns"]] + command, env=env)
    return 128 - rc if rc < 0 else rc


def cmd_recreate_sandbox(args):
    need_root()
    paths = Paths(run_dir())
    with locked(paths):
        lab = Lab(paths, load(paths))
        rec = resolve_target(lab.st, args.target)
        lab.recreate_sandbox(rec, time.monotonic() + args.timeout)
        lab.save()
        lab.wait_ready(args.timeout)
        lab.save()
    return 0


# ---------------------------------------------------------------------------------------------
# status / logs


def status_data(st):
    """Everything `lab status --json` prints."""
    lab = Lab(Paths(st["run"]), st)
    prefix = st["prefix"]
    nodes = [{"name": topology.node_name(k), "netns": topology.node_netns(prefix, k),
              "underlayIP": topology.node_ip(k), "podCIDR": topology.pod_cidr(k)}
             for k in range(1, st["nodes"] + 1)]
    pods = []
    for rec in sorted(st["pods"].values(), key=lambda r: (r["ns"], r["name"])):
        pods.append({
            "namespace": rec["ns"], "name": rec["name"], "ip": rec["ip"],
            "node": topology.node_name(rec["node"]), "netns": rec["netns"],
            "ready": rec["ready"], "enrolled": bool(lab.enrolled(rec)),
            "labels": rec["labels"], "serviceAccount": rec["spec"]["serviceAccountName"],
            "waitPorts": sorted(wait_ports(rec)),
            "processes": [_proc_data(p) for p in rec["procs"]]})
        if st.get("cni"):
            pods[-1]["cni"] = {"containerID": rec.get("cni_id"),
                               "added": bool(rec.get("cni_added")),
                               "error": rec.get("cni_error")}
    services = []
    for key, body in sorted(lab.services().items()):
        ns, name = key.split("/")
        ports = [{"name": p.get("name"), "port": p["port"],
                  "targetPort": p.get("targetPort", p["port"]),
                  "protocol": p.get("protocol", "TCP"),
                  "endpoints": ["%s:%d" % ep for ep in eps]}
                 for p, eps in lab.endpoints(body)]
        services.append({"namespace": ns, "name": name,
                         "vip": st["vips"].get(key) if lab.has_vip(body) else None,
                         "ports": ports})
    daemons = [dict(_proc_data(rec), name=name) for name, rec in sorted(st["daemons"].items())]
    return {"run": st["run"], "prefix": prefix, "build": st["build"],
            "configDir": os.path.join(st["run"], "config"),
            "caCert": os.path.join(st["run"], "ca", "ca.crt"),
            "nsLabels": st["ns_labels"], "api": bool(st.get("api")), "nodes": nodes, "pods": pods,
            "services": services, "daemons": daemons, "cni": _cni_data(st)}


def _cni_data(st):
    """The CNI gate: {"enabled": False}, or its plugin, sockets and log."""
    cfg = st.get("cni")
    if not cfg:
        return {"enabled": False}
    return {"enabled": True, "plugin": cfg["plugin"], "sockets": cfg["sockets"],
            "log": os.path.join(st["run"], "logs", "cni.log")}


def _proc_data(rec):
    return {"pid": rec["pid"], "alive": procs.alive(rec), "argv": rec["argv"],
            "log": rec["log"], "netns": rec["netns"]}


def _table(rows, header):
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip()
                     for r in [header] + rows)


def cmd_status(args):
    st = load(Paths(run_dir()))
    data = status_data(st)
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    print("run dir %s   config %s   build %s" % (data["run"], data["configDir"], data["build"]))
    gate = data["cni"]
    print("cni gate %s" % ("on: plugin %s, log %s" % (gate["plugin"], gate["log"])
                             if gate["enabled"] else "off"))
    print("\nNODES\n" + _table([[n["name"], n["netns"], n["underlayIP"], n["podCIDR"]]
                               for n in data["nodes"]], ["NAME", "NETNS", "UNDERLAY", "PODS"]))
    rows = [[p["namespace"], p["name"], "yes" if p["ready"] else "no", p["ip"], p["node"],
             "yes" if p["enrolled"] else "no",
             ",".join(str(x["pid"]) + ("" if x["alive"] else "(dead)")
                      for x in p["processes"]) or "-"] for p in data["pods"]]
    header = ["NAMESPACE", "NAME", "READY", "IP", "NODE", "MESH", "PIDS"]
    if gate["enabled"]:
        header.append("CNI")
        for row, p in zip(rows, data["pods"]):
            c = p["cni"]
            row.append("added" if c["added"] else "error: " + c["error"] if c["error"]
                       else "pending" if c["containerID"] else "-")
    print("\nPODS\n" + _table(rows, header))
    rows = [[s["namespace"], s["name"], s["vip"] or "None",
             ",".join("%s/%s" % (p["port"], p["protocol"]) for p in s["ports"]),
             len({e.split(":")[0] for p in s["ports"] for e in p["endpoints"]})]
            for s in data["services"]]
    print("\nSERVICES\n" + _table(rows, ["NAMESPACE", "NAME", "VIP", "PORTS", "ENDPOINTS"]))
    rows = [[d["name"], d["pid"], "running" if d["alive"] else "dead", d["log"]]
            for d in data["daemons"]]
    print("\nDAEMONS\n" + _table(rows, ["NAME", "PID", "STATE", "LOG"]))
    return 0


def _log_path(paths, name):
    if "/" in name:                       # NAMESPACE/POD
        try:
            rec = load(paths)["pods"].get(name)
        except (LabError, ValueError):
            rec = None
        name = rec["logname"] if rec else name.split("/", 1)[1]
    path = paths.log(name)
    if not os.path.exists(path):
        have = sorted(f[:-4] for f in os.listdir(paths.logs) if f.endswith(".log")) \
            if os.path.isdir(paths.logs) else []
        raise LabError("no log for %r (have: %s)" % (name, ", ".join(have) or "none"))
    return path


def cmd_logs(args):
    paths = Paths(run_dir())
    if not os.path.isdir(paths.logs):
        raise LabError("no lab logs in %s" % paths.logs)
    if args.name:
        path = _log_path(paths, args.name)
        _print_log(path, args.tail)
        if args.follow:
            _follow(path)
        return 0
    for f in sorted(os.listdir(paths.logs)):
        if f.endswith(".log"):
            print("==> %s <==" % f[:-4])
            _print_log(os.path.join(paths.logs, f), args.tail)
    return 0


def _print_log(path, lines):
    text = read_text(path, "")
    if lines:
        text = "\n".join(text.rstrip("\n").split("\n")[-lines:]) + "\n" if text else ""
    sys.stdout.write(text)
    sys.stdout.flush()


def _follow(path):
    with open(path) as f:
        f.seek(0, os.SEEK_END)
        try:
            while True:
                chunk = f.read()
                if chunk:
                    sys.stdout.write(chunk)
                    sys.stdout.flush()
                else:
                    time.sleep(0.3)
        except KeyboardInterrupt:
            pass


# ---------------------------------------------------------------------------------------------
# down


def cmd_down(args):
    need_root()
    paths = Paths(run_dir())
    st = _load_for_down(paths)
    prefix = st["prefix"] if st else netns_prefix()
    _cni_del_all(paths, st)
    stopped = _stop_everything(paths, st)
    names = set(st["netns"] if st else []) | \
        {n for n in topology.list_netns() if owns_netns(prefix, n)}
    _delete_namespaces(prefix, names)
    _remove_etc_netns(prefix, names, st)
    _remove_run_dir(paths, st)
    info("down: stopped %d process(es), removed %d network namespace(s)"
         % (stopped, len(names)))
    return 0


def _load_for_down(paths):
    try:
        return load(paths)
    except LabError:
        return None
    except ValueError as e:
        warn("state file %s is unreadable (%s); cleaning up by scanning" % (paths.state, e))
        return None


def _cni_del_all(paths, st):
    """With the CNI gate: DEL for every sandbox, while the ztunnels still run (best effort)."""
    if not st or not st.get("cni"):
        return
    try:
        Lab(paths, st).cni_del(list(st["pods"].values()))
    except Exception as e:          # noqa: BLE001 - `down` must go on whatever happens
        warn("CNI DEL during down: %s" % e)


def _stop_everything(paths, st):
    """Stop every process the lab recorded: daemons, pod programs, PID files."""
    recs = {}
    found = list(st["daemons"].values()) if st else []
    for rec in (st["pods"].values() if st else []):
        found += rec["procs"]
    found += procs.read_pidfiles(paths) if os.path.isdir(paths.pids) else []
    for rec in found:
        recs[(rec["pid"], rec.get("start"))] = rec
    live = [r for r in recs.values() if procs.alive(r)]
    left = procs.stop(live, paths)
    for r in left:
        warn("process %d (%s) did not stop" % (r["pid"], r["name"]))
    return len(live) - len(left)


def _delete_namespaces(prefix, names):
    """Delete pods' namespaces, then nodes', then the underlay's."""
    def order(n):
        if n == topology.underlay_name(prefix):
            return 2
        return 1 if n.startswith(prefix + "node") and n[len(prefix) + 4:].isdigit() else 0
    for n in sorted(names, key=lambda n: (order(n), n)):
        pids = run(["ip", "netns", "pids", n], check=False).stdout.split()
        if pids:
            warn("processes the lab did not start still run in %s (pids %s); the namespace "
                 "lives on until they exit" % (n, " ".join(pids)))
        topology.del_netns(n)


def _remove_etc_netns(prefix, names, st):
    etc = topology.ETC_NETNS
    found = {n for n in os.listdir(etc) if owns_netns(prefix, n)} if os.path.isdir(etc) else set()
    for n in names | found:
        topology.remove_etc_netns(n)
    if st and st.get("etc_netns_created"):
        try:
            os.rmdir(etc)
        except OSError:
            pass


def _remove_run_dir(paths, st):
    """Remove what the lab made in the run dir (only if it carries the lab's marker)."""
    if not os.path.exists(os.path.join(paths.run, RUN_MARKER)):
        return
    for entry in Paths.ENTRIES:
        path = os.path.join(paths.run, entry)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            remove_file(path)
    remove_file(os.path.join(paths.run, RUN_MARKER))
    try:
        os.rmdir(paths.run)
    except OSError:
        if st and st.get("created_run_dir"):
            warn("run dir %s is not empty; left in place" % paths.run)


# ---------------------------------------------------------------------------------------------
# main


def build_parser():
    p = argparse.ArgumentParser(
        prog="lab", description="gammamesh lab: a multi-node cluster made of network "
        "namespaces on this machine, running the real daemons (run as root).",
        epilog="Environment: GMLAB_RUN (run dir, default /run/gmlab), GM_BUILD_DIR, "
        "GMLAB_ZTUNNEL, GMLAB_WAYPOINT, GMLAB_ECHO_SERVER, GMLAB_ZTUNNEL_ARGS, "
        "GMLAB_WAYPOINT_ARGS, GMLAB_NAME (second lab side by side), GMLAB_VERBOSE, GMLAB_CNI=1 "
        "(at up: run the gammamesh-cni plugin for every sandbox; GMLAB_CNI_PLUGIN).")
    sub = p.add_subparsers(dest="cmd", required=True, metavar="COMMAND")

    up = sub.add_parser("up", help="build the cluster, apply manifests, wait until ready")
    up.add_argument("--nodes", type=int, default=2, help="number of nodes (default 2)")
    up.add_argument("--ns-label", action="append", metavar="KEY=VALUE",
                    help="label stamped onto every Namespace applied (now and later)")
    up.add_argument("--api", action="store_true",
                    help="daemons list+watch a Kubernetes API server (run by the lab on node1) "
                         "instead of reading the config dir, and find pods' network namespaces "
                         "in a /proc per node (no gammamesh.io/netns annotation), as in a "
                         "cluster")
    up.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT,
                    help="seconds to wait for readiness (default %d)" % DEFAULT_TIMEOUT)
    up.add_argument("files", nargs="*", metavar="FILE")
    up.set_defaults(func=cmd_up)

    ap = sub.add_parser("apply", help="add or change objects")
    ap.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT)
    ap.add_argument("--no-wait", action="store_true", help="do not wait for readiness")
    ap.add_argument("files", nargs="+", metavar="FILE")
    ap.set_defaults(func=cmd_apply)

    de = sub.add_parser("delete", help="remove objects")
    de.add_argument("files", nargs="+", metavar="FILE")
    de.set_defaults(func=cmd_delete)

    ex = sub.add_parser("exec", help="run a command in a pod's network namespace",
                        description="TARGET is NAMESPACE/POD or NAMESPACE/LABEL=VALUE[,…] "
                        "(first ready match by name). Exit status: the command's, 127 if it "
                        "is not found, %d for the lab's own errors." % EXEC_LAB_ERROR)
    ex.add_argument("target")
    ex.add_argument("command", nargs=argparse.REMAINDER)
    ex.set_defaults(func=cmd_exec)

    rs = sub.add_parser("recreate-sandbox",
                        help="replace a pod's network namespace as kubelet does when its sandbox "
                             "dies (same pod object and IP), restart its programs, wait until "
                             "ready")
    rs.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT)
    rs.add_argument("target", help="NAMESPACE/POD or NAMESPACE/LABEL=VALUE[,…]")
    rs.set_defaults(func=cmd_recreate_sandbox)

    stp = sub.add_parser("status", help="nodes, pods, services, daemons")
    stp.add_argument("--json", action="store_true")
    stp.set_defaults(func=cmd_status)

    lg = sub.add_parser("logs", help="print daemon or pod logs")
    lg.add_argument("name", nargs="?", metavar="DAEMON",
                    help="e.g. ztunnel-node1, a pod name or NAMESPACE/POD; default all")
    lg.add_argument("-f", "--follow", action="store_true")
    lg.add_argument("-n", "--tail", type=int, default=0, metavar="N", help="last N lines")
    lg.set_defaults(func=cmd_logs)

    dn = sub.add_parser("down", help="remove every namespace, process and file of the lab")
    dn.set_defaults(func=cmd_down)
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except LabError as e:
        print("lab: error: %s" % e, file=sys.stderr)
        return EXEC_LAB_ERROR if args.cmd == "exec" else 1
    except KeyboardInterrupt:
        print("lab: interrupted", file=sys.stderr)
        return 130
