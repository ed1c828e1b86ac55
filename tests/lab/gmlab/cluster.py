"""The lab's controller: turns applied objects into pods, Service VIPs, DNAT rules, hosts files
and config-dir files; starts the programs; waits until everything is ready.

Every command works the same way: load the state, change `objects`, call `reconcile()` (which
brings pods, addresses and files in line with the objects), start what is not running, wait,
save. Reconciling is idempotent, so a command that failed half-way can simply be repeated.
"""

import functools
import hashlib
import json
import os
import secrets
import shutil
import sys
import time
import uuid

from . import cni, configdir, kubeproxy, procs, topology
from .manifest import CLUSTER_SCOPED, display, object_key
from .state import save
from .util import LabError, info, now_rfc3339, remove_file, tail, warn, write_atomic
from .workloads import (HBONE_PORT, MESH_LABEL, WAYPOINT_CLASS, declared_ports,
                        deployment_workload, echo_ports, pod_workload, program_for, random_name,
                        target_port, wait_ports, waypoint_workload)

NETNS_ANNOTATION = "gammamesh.io/netns"
API_PORT = 6443
READY_PORT = 15021
ADMIN_PORT = 15000
READY_PATH = "/healthz/ready"
VIP_RANGES = 128                                  # 198.19.0.x … 198.19.127.x


class Lab:
    """One running lab: its paths, its state (a JSON-able dict) and the operations on it."""

    def __init__(self, paths, st):
        self.paths = paths
        self.st = st
        self.prefix = st["prefix"]
        self.progs = st["programs"]
        self.cni = st.get("cni")      # the CNI gate (GMLAB_CNI=1 at `up`), or None
        self._cni_retry = {}          # pod key -> monotonic time of its next ADD

    def save(self):
        save(self.paths, self.st)

    # -- objects ------------------------------------------------------------------------------

    def apply_objects(self, objs):
        """Record applied objects (stamping --ns-label labels onto Namespaces)."""
        seen = {}
        for o in objs:
            if o.key in seen:
                warn("%s is defined twice (%s and %s); the last one wins"
                     % (o.key, seen[o.key], o.where))
            seen[o.key] = o.where
            body = o.body
            if o.kind == "Namespace":
                labels = body["metadata"].setdefault("labels", {})
                labels.update(self.st["ns_labels"])
                labels["kubernetes.io/metadata.name"] = o.name
                if o.name in self.st["implicit_ns"]:
                    self.st["implicit_ns"].remove(o.name)
            old = self.st["objects"].get(o.key)
            if old is not None and o.stamped:
                # A re-applied object keeps its age, as with the API server (route precedence
                # depends on it).
                body["metadata"]["creationTimestamp"] = old["metadata"]["creationTimestamp"]
            self.st["objects"][o.key] = body
            self.st["sources"][o.key] = o.where
        self._ensure_namespaces()

    def delete_objects(self, objs):
        """Forget objects; deleting a Namespace deletes everything in it."""
        dying_ns = {o.name for o in objs if o.kind == "Namespace"}
        for o in objs:
            if o.key not in self.st["objects"]:
                if o.ns not in dying_ns:
                    warn("%s not found (%s)" % (o.key, o.where))
                continue
            self._forget(o.key)
            if o.kind == "Namespace":
                for key in [k for k in self.st["objects"] if k.split("/")[1] == o.name]:
                    self._forget(key)
                if o.name in self.st["implicit_ns"]:
                    self.st["implicit_ns"].remove(o.name)

    def _forget(self, key):
        self.st["objects"].pop(key, None)
        self.st["sources"].pop(key, None)

    def _ensure_namespaces(self):
        """Create a plain Namespace object for every namespace that is used but not defined."""
        used = {b["metadata"]["namespace"] for b in self.st["objects"].values()
                if b["kind"] not in CLUSTER_SCOPED}
        for ns in sorted(used):
            key = object_key("Namespace", "", ns)
            if key not in self.st["objects"]:
                self.st["objects"][key] = {
                    "apiVersion": "v1", "kind": "Namespace",
                    "metadata": {"name": ns, "creationTimestamp": now_rfc3339(),
                                 "labels": {"kubernetes.io/metadata.name": ns}}}
                self.st["sources"][key] = "(implicit)"
                self.st["implicit_ns"].append(ns)

    def namespace_labels(self, ns):
        body = self.st["objects"].get(object_key("Namespace", "", ns))
        return (body or {}).get("metadata", {}).get("labels") or {}

    # -- workloads and pods ---------------------------------------------------------------------

    def workloads(self):
        """Every Workload the objects ask for, by owner key."""
        out = {}
        for key, body in sorted(self.st["objects"].items()):
            kind = body["kind"]
            if kind == "Deployment":
                out[key] = deployment_workload(key, body)
            elif kind == "Pod":
                out[key] = pod_workload(key, body)
            elif kind == "Gateway" and body["spec"].get("gatewayClassName") == WAYPOINT_CLASS:
                ns, name = body["metadata"]["namespace"], body["metadata"]["name"]
                if object_key("Deployment", ns, name) in self.st["objects"]:
                    raise LabError("waypoint Gateway %s/%s: a Deployment %s/%s already exists; "
                                   "the lab names the waypoint's Deployment after the Gateway"
                                   % (ns, name, ns, name))
                out[key] = waypoint_workload(key, body)
        return out

    def enrolled(self, rec):
        """Is the pod in the mesh? Pod label beats namespace label (DESIGN.md §2)."""
        mode = rec["labels"].get(MESH_LABEL)
        if mode in ("none", "ambient"):
            return mode == "ambient"
        return self.namespace_labels(rec["ns"]).get(MESH_LABEL) == "ambient"

    def preflight(self):
        """Raise LabError if the objects cannot be realised (before anything is changed)."""
        self._check_programs(self.workloads().values())

    def reconcile(self):
        """Bring pods, VIPs, config files, hosts files and DNAT rules in line with the objects."""
        wants = self.workloads()
        self._check_programs(wants.values())
        doomed = self._doomed_pods(wants)
        for key in doomed:
            rec = self.st["pods"].pop(key)
            info("deleting pod %s/%s" % (rec["ns"], rec["name"]))
            doomed[key] = rec
        self.allocate_vips()
        if doomed:
            self.sync()      # out of the config dir and the DNAT rules before it stops
            self._teardown(doomed.values())
        for wl in wants.values():
            have = [r for r in self.st["pods"].values() if r["owner"] == wl.owner]
            for _ in range(wl.replicas - len(have)):
                self._create_pod(wl)
        self.sync()

    def _doomed_pods(self, wants):
        """Pods whose owner is gone or changed, and extra replicas (newest first)."""
        doomed = {}
        by_owner = {}
        for key, rec in self.st["pods"].items():
            wl = wants.get(rec["owner"])
            if wl is None or wl.hash != rec["hash"]:
                doomed[key] = None
            else:
                by_owner.setdefault(rec["owner"], []).append(key)
        for owner, keys in by_owner.items():
            keys.sort(key=lambda k: (self.st["pods"][k]["created"], k))
            for key in keys[wants[owner].replicas:]:
                doomed[key] = None
        return doomed

    def _check_programs(self, wls):
        needed = {program_for(c["image"]) for wl in wls for c in wl.template["spec"]["containers"]}
        for prog, path in (("echo", self.progs["echo-server"]),
                           ("waypoint", self.progs["waypoint"])):
            if prog in needed and not os.access(path, os.X_OK):
                env = "GMLAB_ECHO_SERVER" if prog == "echo" else "GMLAB_WAYPOINT"
                raise LabError("%s is not built: %s is missing (run `meson compile -C %s`, or "
                               "set %s)" % (prog, path, self.st["build"], env))

    def _pick_node(self, owner):
        """Spread pods: fewest pods of this owner, then fewest pods, then lowest index."""
        counts = {k: [0, 0] for k in range(1, self.st["nodes"] + 1)}
        for rec in self.st["pods"].values():
            counts[rec["node"]][1] += 1
            if rec["owner"] == owner:
                counts[rec["node"]][0] += 1
        return min(counts, key=lambda k: (counts[k][0], counts[k][1], k))

    def _alloc_ip(self, k):
        """The next free 198.18.K.n (n in 10..254), not reusing addresses right away."""
        used = {r["ip"] for r in self.st["pods"].values() if r["node"] == k}
        start = self.st["ip_next"].get(str(k), 10)
        for i in range(245):
            n = 10 + (start - 10 + i) % 245
            ip = "198.18.%d.%d" % (k, n)
            if ip not in used:
                self.st["ip_next"][str(k)] = 10 + (n - 10 + 1) % 245
                return ip, n
        raise LabError("node%d has no free pod address left" % k)

    def _pod_name(self, wl):
        if wl.bare:
            return wl.name
        names = {r["name"] for r in self.st["pods"].values()}
        while True:
            name = "%s-%s-%s" % (wl.name, wl.hash, random_name(5))
            if name not in names:
                return name

    def _log_name(self, ns, name):
        """logs/<pod>.log, or <ns>.<pod> when a pod of that name exists in another namespace."""
        taken = {r["logname"] for r in self.st["pods"].values()} | set(self.st["daemons"])
        if self.cni:
            taken.add("cni")
        return name if name not in taken else "%s.%s" % (ns, name)

    def _create_pod(self, wl):
        """Allocate, record (state first, for crash safety) and build one pod's network."""
        name = self._pod_name(wl)
        k = self._pick_node(wl.owner)
        ip, octet = self._alloc_ip(k)
        spec = json.loads(json.dumps(wl.template["spec"]))
        spec.setdefault("serviceAccountName", "default")
        spec["nodeName"] = topology.node_name(k)
        rec = {
            "ns": wl.ns, "name": name, "uid": str(uuid.uuid4()), "node": k, "ip": ip,
            "netns": topology.pod_netns(self.prefix, wl.ns, name), "veth": "pod%d" % octet,
            "owner": wl.owner, "hash": wl.hash, "created": now_rfc3339(),
            "labels": dict(wl.template["metadata"]["labels"]),
            "annotations": dict(wl.template["metadata"]["annotations"]),
            "spec": spec, "ready": False, "started": False, "procs": [],
            "logname": self._log_name(wl.ns, name),
        }
        if not wl.bare:
            rec["labels"]["pod-template-hash"] = wl.hash
        if self.cni:
            rec["cni_id"] = cni.new_container_id()
        info("creating pod %s/%s on %s (%s)" % (wl.ns, name, spec["nodeName"], ip))
        self.st["pods"]["%s/%s" % (wl.ns, name)] = rec
        self.st["netns"].append(rec["netns"])
        self.save()
        topology.create_pod(self.prefix, k, rec["netns"], ip, rec["veth"])
        return rec

    def _teardown(self, recs):
        """Stop the pods' programs and remove their namespaces and /etc/netns files."""
        recs = list(recs)
        left = procs.stop([p for r in recs for p in r["procs"]], self.paths)
        for p in left:
            warn("process %d (%s) did not stop" % (p["pid"], p["name"]))
        self.cni_del(recs)
        for r in recs:
            self._remove_proc(r)
            topology.del_netns(r["netns"])
            topology.remove_etc_netns(r["netns"])
            if r["netns"] in self.st["netns"]:
                self.st["netns"].remove(r["netns"])
        self.save()

    def recreate_sandbox(self, rec, deadline=None):
        """What kubelet does when a pod's sandbox dies: the pod object stays as it is (uid, IP,
        Ready), its programs stop, its network namespace is replaced by a new one under the same
        name and address, and its programs start again there. Nothing tells the daemons but the
        namespace itself (and, with --api, the pod's processes under the node's /proc)."""
        info("re-creating the sandbox of pod %s/%s" % (rec["ns"], rec["name"]))
        left = procs.stop(rec["procs"], self.paths)
        for p in left:
            warn("process %d (%s) did not stop" % (p["pid"], p["name"]))
        self._remove_proc(rec)
        rec["procs"], rec["started"], rec["restarting"] = [], False, True
        self.save()
        self.cni_del([rec])
        # the CNI's DEL: the veth goes even when a daemon still holds the old namespace open
        topology.del_link(topology.node_netns(self.prefix, rec["node"]), rec["veth"])
        topology.del_netns(rec["netns"])
        topology.create_pod(self.prefix, rec["node"], rec["netns"], rec["ip"], rec["veth"])
        if self.cni:
            rec["cni_id"] = cni.new_container_id()
            self.save()
        self.start_pending(deadline)

    # -- programs -----------------------------------------------------------------------------

    def config_args(self):
        """How a daemon reads the objects: the config dir, or the lab's API server."""
        if not self.st.get("api"):
            return ["--config-dir", self.paths.config]
        return ["--config-source", "kubernetes",
                "--kube-api", "https://%s:%d" % (topology.node_ip(1), API_PORT),
                "--kube-token-file", self.paths.api_token, "--kube-ca-file", self.paths.api_ca]

    def start_api(self, timeout=20):
        """The API server (gmlab.kubeapi) in node1's netns, serving what the config dir holds."""
        os.makedirs(self.paths.api, mode=0o700, exist_ok=True)
        write_atomic(self.paths.api_token, secrets.token_hex(16) + "\n", mode=0o600)
        remove_file(os.path.join(self.paths.api, "ready"))
        self.sync()
        env = dict(os.environ)
        env["PYTHONPATH"] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        argv = [sys.executable, "-m", "gmlab.kubeapi", "--objects", self.paths.api_objects,
                "--listen", "%s:%d" % (topology.node_ip(1), API_PORT),
                "--workdir", self.paths.api]
        info("starting kube-api")
        self.st["daemons"]["kube-api"] = procs.start("kube-api", argv,
                                                     topology.node_netns(self.prefix, 1),
                                                     self.paths, env)
        self.save()
        deadline = time.monotonic() + timeout
        while not os.path.exists(os.path.join(self.paths.api, "ready")):
            self._check_daemons_alive()
            if time.monotonic() > deadline:
                raise LabError("kube-api did not start within %ds (log: %s)"
                               % (timeout, self.paths.log("kube-api")))
            time.sleep(0.1)

    def start_ztunnels(self):
        if self.st.get("api"):
            self.start_api()
        for k in range(1, self.st["nodes"] + 1):
            node = topology.node_name(k)
            argv = [self.progs["ztunnel"]] + self.config_args() + [
                "--node-name", node, "--ca-cert", self.paths.ca_cert,
                "--ca-key", self.paths.ca_key, "--log-format", "text"]
            if self.st.get("api"):
                argv += ["--proc-root", os.path.join(self.paths.proc, node)]
            if self.cni:
                os.makedirs(self.cni["dir"], mode=0o700, exist_ok=True)
                argv += ["--cni-socket", self.cni["sockets"][node]]
            argv += self.progs["ztunnel-args"]
            name = "ztunnel-" + node
            info("starting %s" % name)
            rec = procs.start(name, argv, topology.node_netns(self.prefix, k), self.paths,
                              dict(os.environ))
            self.st["daemons"][name] = rec
            self.save()

    def start_pending(self, deadline=None):
        """Start the programs of every pod that has not been started yet (with the CNI gate:
        of those whose sandbox the plugin's ADD admitted; `deadline`, a time.monotonic(),
        bounds the ADD's timeout_seconds)."""
        pending = [r for r in sorted(self.st["pods"].values(), key=lambda r: (r["ns"], r["name"]))
                   if not r["started"]]
        if self.cni:
            pending = self._cni_add(pending, deadline)
        for rec in pending:
            for c in rec["spec"]["containers"]:
                self._start_container(rec, c)
            rec["started"] = True
            self._write_proc(rec)
            self.save()

    # -- the CNI gate -------------------------------------------------------------------------

    def _cni_call(self, command, rec, timeout_seconds):
        env, stdin = cni.invocation(self.cni, command, rec, rec["spec"]["nodeName"],
                                    os.path.join(topology.NETNS_DIR, rec["netns"]),
                                    timeout_seconds)
        return cni.run_plugin(self.cni, env, stdin, timeout_seconds + 5, self.paths.log("cni"),
                              "%s/%s" % (rec["ns"], rec["name"]))

    def _cni_add(self, recs, deadline):
        """Run ADD, as kubelet does once the sandbox's network is set up, for the pods among
        recs that are due (a failed ADD is retried a second later; a node whose ztunnel has no
        socket yet is waited for, so no pod starts before the gate can hold it). Returns the
        pods whose programs may start."""
        now = time.monotonic()
        admitted, due = [], []
        for rec in recs:
            key = "%s/%s" % (rec["ns"], rec["name"])
            if rec.get("cni_added"):
                admitted.append(rec)
            elif self._cni_retry.get(key, 0) <= now and \
                    cni.socket_ready(self.cni["sockets"][rec["spec"]["nodeName"]]):
                due.append(rec)
        if not due:
            return admitted
        left = cni.ADD_TIMEOUT_MAX if deadline is None else deadline - now
        timeout = max(1, min(cni.ADD_TIMEOUT_MAX, int(left)))
        results = cni.run_parallel([functools.partial(self._cni_call, "ADD", rec, timeout)
                                    for rec in due])
        changed = False
        for rec, (rc, out, err) in zip(due, results):
            key = "%s/%s" % (rec["ns"], rec["name"])
            if rc == 0:
                rec["cni_added"] = True
                rec.pop("cni_error", None)
                admitted.append(rec)
                continue
            msg = cni.failure_message(rc, out, err)
            if rec.get("cni_error") != msg:
                warn("pod %s: CNI ADD failed: %s (its programs wait; retrying every second)"
                     % (key, msg))
                with open(self.paths.log(rec["logname"]), "a") as f:
                    f.write("--- %s lab: CNI ADD failed (programs not started): %s\n"
                            % (now_rfc3339(), msg))
            rec["cni_error"] = msg
            self._cni_retry[key] = time.monotonic() + 1.0
            if rec["ready"]:       # a re-created sandbox that the gate holds
                rec["ready"] = False
                changed = True
        if changed:
            self.sync()
        self.save()
        return admitted

    def cni_del(self, recs):
        """DEL for the sandboxes of recs (best effort: failures are only logged in cni.log)."""
        recs = [r for r in recs if r.get("cni_id")]
        if not self.cni or not recs:
            return
        cni.run_parallel([functools.partial(self._cni_call, "DEL", r, cni.DEL_TIMEOUT)
                          for r in recs])
        for r in recs:
            for k in ("cni_id", "cni_added", "cni_error"):
                r.pop(k, None)
        self.save()

    def cni_problem(self, rec):
        """Why a pod's programs have not started (the CNI gate holds them)."""
        if rec.get("cni_error"):
            return "CNI ADD failed: %s" % rec["cni_error"]
        node = rec["spec"]["nodeName"]
        if self.cni and not cni.socket_ready(self.cni["sockets"][node]):
            return "waiting for ztunnel-%s to open its CNI socket %s" \
                % (node, self.cni["sockets"][node])
        return "its CNI ADD has not run yet"

    def _proc_dirs(self, rec):
        node = topology.node_name(rec["node"])
        return [os.path.join(self.paths.proc, node, str(p["pid"])) for p in rec["procs"]]

    def _write_proc(self, rec):
        """lab up --api: what a node's /proc shows of a pod's processes (their cgroup, named
        after the pod's uid as kubelet's systemd driver names it, and their netns), for
        ztunnel's --proc-root."""
        if not self.st.get("api"):
            return
        uid = rec["uid"].replace("-", "_")
        for d in self._proc_dirs(rec):
            os.makedirs(os.path.join(d, "ns"), exist_ok=True)
            write_atomic(os.path.join(d, "cgroup"),
                         "0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod%s"
                         ".slice/cri-containerd-%s.scope\n"
                         % (uid, hashlib.sha256(d.encode()).hexdigest()))
            link = os.path.join(d, "ns", "net")
            if not os.path.islink(link):
                os.symlink(os.path.join(topology.NETNS_DIR, rec["netns"]), link)

    def _remove_proc(self, rec):
        for d in self._proc_dirs(rec):
            shutil.rmtree(d, ignore_errors=True)

    def _start_container(self, rec, c):
        prog = program_for(c["image"])
        if prog is None:
            warn("pod %s/%s: image %s is not one the lab knows; container %s runs nothing"
                 % (rec["ns"], rec["name"], c["image"], c["name"]))
            return
        if prog == "echo":
            argv = [self.progs["echo-server"]] + list(c.get("args") or [])
            unserved = declared_ports(c) - echo_ports(argv[1:])
            if unserved:
                info("pod %s/%s: the echo server is not asked to serve declared port(s) %s; "
                     "not waiting for them" % (rec["ns"], rec["name"],
                                               ",".join(map(str, sorted(unserved)))))
        else:
            argv = [self.progs["waypoint"]] + self.config_args() + [
                    "--node-name", rec["spec"]["nodeName"], "--ca-cert", self.paths.ca_cert,
                    "--ca-key", self.paths.ca_key, "--pod-name", rec["name"],
                    "--pod-namespace", rec["ns"]]
            argv += list(c.get("args") or []) + self.progs["waypoint-args"]
        env = dict(os.environ)
        env.update({e["name"]: e["value"] for e in c.get("env") or [] if "value" in e})
        env.update({"HOSTNAME": rec["name"], "POD_NAME": rec["name"], "POD_NAMESPACE": rec["ns"],
                    "NAMESPACE": rec["ns"], "INSTANCE_IP": rec["ip"], "POD_IP": rec["ip"]})
        if "version" in rec["labels"]:
            env["SERVICE_VERSION"] = rec["labels"]["version"]
        pidname = rec["logname"] if len(rec["spec"]["containers"]) == 1 \
            else "%s.%s" % (rec["logname"], c["name"])
        rec["procs"].append(procs.start(rec["logname"], argv, rec["netns"], self.paths, env,
                                        pidname=pidname))

    # -- services -----------------------------------------------------------------------------

    def services(self):
        """Service objects by "ns/name"."""
        return {"%s/%s" % (b["metadata"]["namespace"], b["metadata"]["name"]): b
                for b in self.st["objects"].values() if b["kind"] == "Service"}

    @staticmethod
    def has_vip(body):
        spec = body["spec"]
        return spec.get("type") != "ExternalName" and spec.get("clusterIP") != "None"

    def allocate_vips(self):
        """A VIP per Service: explicit clusterIP, else the one it had, else hash-preferred."""
        vips = self.st["vips"]
        owners = {}
        for key, body in sorted(self.services().items()):
            if not self.has_vip(body):
                continue
            want = body["spec"].get("clusterIP") or vips.get(key)
            if want and owners.get(want, key) != key:
                raise LabError("Service %s: clusterIP %s is already used by %s"
                               % (key, want, owners[want]))
            vips[key] = want or self._free_vip(key)
            owners[vips[key]] = key

    def _free_vip(self, key):
        taken = set(self.st["vips"].values())
        first = int(hashlib.sha256(key.encode()).hexdigest(), 16) % 254
        for i in range(254 * VIP_RANGES):
            n = (first + i) % (254 * VIP_RANGES)
            ip = "198.19.%d.%d" % (n // 254, n % 254 + 1)
            if ip not in taken:
                return ip
        raise LabError("no Service VIP left in 198.19.0.0/17")

    def endpoints(self, body):
        """[(port spec, [(podIP, targetPort)])] for a Service, over its ready pods."""
        ns = body["metadata"]["namespace"]
        selector = body["spec"].get("selector") or {}
        pods = [] if not selector else [
            r for r in self.st["pods"].values()
            if r["ns"] == ns and r["ready"]
            and all(r["labels"].get(k) == v for k, v in selector.items())]
        out = []
        for port in body["spec"].get("ports") or []:
            eps = []
            for r in pods:
                target = target_port(r, port)
                if target is not None:
                    eps.append((r["ip"], target))
            out.append((port, sorted(eps)))
        return out

    # -- files and rules ----------------------------------------------------------------------

    def sync(self):
        """Write the config dir, every pod's hosts file and every node's DNAT rules."""
        files = self.config_files()
        configdir.sync(self.paths.config, files)
        if self.st.get("api") and os.path.isdir(self.paths.api):
            objs = [files[k] for k in sorted(files)]
            text = json.dumps(objs, sort_keys=True)
            try:
                with open(self.paths.api_objects) as f:
                    same = f.read() == text
            except FileNotFoundError:
                same = False
            if not same:
                write_atomic(self.paths.api_objects, text)
        hosts_tail = self._service_hosts_lines()
        for rec in self.st["pods"].values():
            topology.write_etc_netns(rec["netns"], self._hosts_file(rec, hosts_tail),
                                     RESOLV_CONF)
        self._sync_dnat()
        self.save()

    def config_files(self):
        """{file name: object} of everything the daemons should see."""
        files = {}
        for body in self.st["objects"].values():
            kind, meta = body["kind"], body["metadata"]
            if kind in ("Deployment", "Pod"):
                continue      # the realised Pods below stand for them
            out = body
            if kind == "Service" and self.has_vip(body):
                out = json.loads(json.dumps(body))
                vip = self.st["vips"]["%s/%s" % (meta["namespace"], meta["name"])]
                out["spec"]["clusterIP"] = vip
                out["spec"]["clusterIPs"] = [vip]
            _add_file(files, configdir.file_name(kind, meta.get("namespace", ""), meta["name"]),
                      out)
        for rec in self.st["pods"].values():
            _add_file(files, configdir.file_name("Pod", rec["ns"], rec["name"]),
                      self.pod_object(rec))
        return files

    def pod_object(self, rec):
        """The Pod as the daemons see it (DESIGN.md §4: podIP, nodeName, Ready condition)."""
        annotations = dict(rec["annotations"])
        if not self.st.get("api"):   # in a cluster, ztunnel finds the netns itself
            annotations[NETNS_ANNOTATION] = rec["netns"]
        meta = {"name": rec["name"], "namespace": rec["ns"], "uid": rec["uid"],
                "creationTimestamp": rec["created"], "labels": rec["labels"],
                "annotations": annotations}
        kind, ns, owner = rec["owner"].split("/")
        if kind != "Pod":
            rs = "%s-%s" % (owner, rec["hash"])
            meta["ownerReferences"] = [{
                "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": rs,
                "uid": str(uuid.uuid5(uuid.NAMESPACE_URL, "gmlab:%s/%s" % (ns, rs))),
                "controller": True}]
        return {
            "apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": rec["spec"],
            "status": {"phase": "Running", "hostIP": topology.node_ip(rec["node"]),
                       "podIP": rec["ip"], "podIPs": [{"ip": rec["ip"]}],
                       "conditions": [{"type": "Ready",
                                       "status": "True" if rec["ready"] else "False"}]},
        }

    def _service_hosts_lines(self):
        """[(namespace, name, hosts line)] for every Service with an address (headless
        Services: one line per ready endpoint)."""
        lines = []
        for key, body in sorted(self.services().items()):
            ns, name = key.split("/")
            names = "%s.%s.svc.cluster.local %s.%s.svc %s.%s" % (name, ns, name, ns, name, ns)
            if self.has_vip(body):
                lines.append((ns, name, "%s\t%s" % (self.st["vips"][key], names)))
            elif body["spec"].get("clusterIP") == "None":      # headless: the pods' addresses
                ips = sorted({ip for _, eps in self.endpoints(body) for ip, _ in eps})
                lines += [(ns, name, "%s\t%s" % (ip, names)) for ip in ips]
        return lines

    def _hosts_file(self, rec, service_lines):
        out = ["# written by the gammamesh lab for pod %s/%s" % (rec["ns"], rec["name"]),
               "127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback",
               "%s\t%s" % (rec["ip"], rec["name"])]
        for ns, name, line in service_lines:
            out.append(line + (" " + name if ns == rec["ns"] else ""))
        return "\n".join(out) + "\n"

    def _sync_dnat(self):
        rules = []
        for key, body in sorted(self.services().items()):
            if not self.has_vip(body):
                continue
            for port, eps in self.endpoints(body):
                rules.append(kubeproxy.PortRule(
                    "%s:%s" % (key, port.get("name") or port["port"]), self.st["vips"][key],
                    port["port"], port.get("protocol", "TCP"), eps))
        for k in range(1, self.st["nodes"] + 1):
            script = kubeproxy.render(k, [r for r in rules if r.protocol in ("tcp", "udp")])
            digest = kubeproxy.digest(script)
            if self.st["nft"].get(str(k)) != digest:
                kubeproxy.apply(topology.node_netns(self.prefix, k), script)
                self.st["nft"][str(k)] = digest

    # -- readiness ------------------------------------------------------------------------------

    def wait_ready(self, timeout):
        """Wait until every pod listens on its ports and is Ready, every ztunnel answers
        /healthz/ready with 200 and every enrolled pod has 15008 open; LabError on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            if self.cni:
                self.start_pending(deadline)
            problems = self.check_ready()
            if not problems:
                return
            if time.monotonic() >= deadline:
                raise LabError("timed out after %ds waiting for:\n  %s\n(the lab is left up "
                               "for inspection: `lab status`, `lab logs`, `lab down`)"
                               % (timeout, "\n  ".join(problems)))
            time.sleep(0.2)

    def check_ready(self):
        """One readiness pass: marks pods Ready, returns what is still missing."""
        problems = []
        self._check_daemons_alive()
        changed = False
        pods = sorted(self.st["pods"].values(), key=lambda r: (r["ns"], r["name"]))
        listening = {}
        for rec in pods:
            changed |= self._check_pod_alive(rec)
            if (rec["ready"] and not rec.get("restarting")) or rec.get("failed"):
                continue
            if not rec["started"]:
                problems.append("pod %s/%s: programs not started: %s"
                                % (rec["ns"], rec["name"], self.cni_problem(rec)))
                continue
            listening[rec["netns"]] = topology.listening_tcp_ports(rec["netns"])
            missing = sorted(wait_ports(rec) - listening[rec["netns"]])
            if missing:
                problems.append("pod %s/%s: nothing listens on port %s yet (log: %s)"
                                % (rec["ns"], rec["name"], ",".join(map(str, missing)),
                                   self.paths.log(rec["logname"])))
            elif rec.pop("restarting", False) and rec["ready"]:
                pass  # a re-created sandbox: Ready throughout, as its pod object says
            else:
                rec["ready"] = changed = True
        if changed:
            self.sync()
        for k in range(1, self.st["nodes"] + 1):
            status = topology.http_status(topology.node_netns(self.prefix, k), "127.0.0.1",
                                          READY_PORT, READY_PATH)
            if status != 200:
                problems.append("ztunnel-node%d: GET http://127.0.0.1:%d%s: %s (log: %s)"
                                % (k, READY_PORT, READY_PATH, status,
                                   self.paths.log("ztunnel-node%d" % k)))
        if not problems:
            problems += self._check_ztunnels_current(pods)
        for rec in pods:
            if self.enrolled(rec):
                ports = listening.get(rec["netns"]) or \
                    topology.listening_tcp_ports(rec["netns"])
                if HBONE_PORT not in ports:
                    problems.append("pod %s/%s: enrolled in the mesh, but nothing listens on "
                                    "%d in its netns yet (ztunnel-%s)"
                                    % (rec["ns"], rec["name"], HBONE_PORT,
                                       rec["spec"]["nodeName"]))
        return problems

    def _check_ztunnels_current(self, pods):
        """Every ztunnel has applied what the lab last wrote: the same pods Ready, the same
        Service VIPs. A ztunnel is ready once it has a configuration, not once it has this one
        (it reads changes within a second), and a client that starts right after `lab up` or
        `lab apply` must not meet an older one ("no healthy upstream" for a Service whose pods
        it has not seen Ready yet)."""
        want_ready = {"%s/%s" % (r["ns"], r["name"]) for r in pods if r["ready"]}
        want_vips = {k: v for k, v in self.st["vips"].items()
                     if k in self.services() and self.has_vip(self.services()[k])}
        problems = []
        for k in range(1, self.st["nodes"] + 1):
            status, body = topology.http_get(topology.node_netns(self.prefix, k), "127.0.0.1",
                                             ADMIN_PORT, "/config_dump")
            try:
                snap = json.loads(body)["snapshot"] if status == 200 else None
            except (ValueError, KeyError, TypeError):
                snap = None
            if not snap:
                problems.append("ztunnel-node%d: no snapshot in /config_dump yet (%s)"
                                % (k, status))
                continue
            ready = {"%s/%s" % (w["namespace"], w["name"]) for w in snap["workloads"]
                     if w["ready"]}
            vips = {"%s/%s" % (sv["namespace"], sv["name"]): sv["vip"]
                    for sv in snap["services"] if sv.get("vip")}
            late = sorted(want_ready ^ ready)
            if late:
                problems.append("ztunnel-node%d has not applied the readiness of pod(s) %s yet"
                                % (k, ", ".join(late[:5])))
            stale = sorted(k2 for k2, v in want_vips.items() if vips.get(k2) != v)
            if stale:
                problems.append("ztunnel-node%d has not applied the VIP of Service(s) %s yet"
                                % (k, ", ".join(stale[:5])))
        return problems

    def _check_daemons_alive(self):
        for name, rec in sorted(self.st["daemons"].items()):
            if not procs.alive(rec):
                raise LabError("%s exited%s; last lines of %s:\n%s"
                               % (name, _status_text(rec), rec["log"], tail(rec["log"])))

    def _check_pod_alive(self, rec):
        """Fail fast when a program of a pod we wait for exits. A pod that was Ready and lost
        a program is marked failed (not Ready, out of the endpoints) with a warning; the lab
        does not restart programs. Returns True if the pod's readiness changed."""
        dead = [p for p in rec["procs"] if not procs.alive(p)]
        if not dead or rec.get("failed"):
            return False
        p = dead[0]
        what = "pod %s/%s: %s exited%s" % (rec["ns"], rec["name"],
                                          os.path.basename(p["argv"][0]), _status_text(p))
        if not rec["ready"]:
            raise LabError("%s; last lines of %s:\n%s" % (what, p["log"], tail(p["log"])))
        warn("%s; the pod is no longer Ready (see %s; `lab delete` and `lab apply` it to "
             "start it again)" % (what, p["log"]))
        rec["ready"] = False
        rec["failed"] = what
        return True


RESOLV_CONF = ("# written by the gammamesh lab: names come from this pod's hosts file;\n"
               "# there is no DNS server in the lab.\n"
               "nameserver 127.0.0.1\n"
               "options timeout:1 attempts:1\n")


def _add_file(files, fname, obj):
    """Add one config file; two objects whose names map to the same file are an error."""
    if fname in files:
        raise LabError("%s and %s would both be written to %s; rename one of them"
                       % (_describe(obj), _describe(files[fname]), fname))
    files[fname] = obj


def _describe(obj):
    meta = obj["metadata"]
    return display(obj["kind"], meta.get("namespace", ""), meta["name"])


def _status_text(rec):
    status = procs.exit_status(rec)
    return "" if status is None else " with status %d" % status
