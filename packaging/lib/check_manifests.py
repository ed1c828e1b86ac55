#!/usr/bin/python3
"""Structural checks of rendered Kubernetes manifests (no cluster, no kubectl, no PyYAML).

  check_manifests.py --ztunnel BIN [--waypoint BIN] [--settings-header H] FILE...

Parses every document with the strict subset parser (gmyaml), checks what the API server or
kubelet would refuse or what would break at run time (names, labels, selectors, ports,
probes, volumes and mounts, env values, service accounts, RBAC references, drain deadline vs
grace period, the waypoint Gateway shape, the CNI gate's init container, socket and host
directories), then runs `ztunnel --check` over the files and
over the configuration files carried in ConfigMaps, which decodes gammamesh's own kinds with
the daemons' own loader. Prints one line per problem; exit 1 if there is any.
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gmyaml  # noqa: E402

NAMESPACED = {"ConfigMap", "Secret", "Service", "ServiceAccount", "DaemonSet", "Deployment",
              "ResourceQuota", "Role", "RoleBinding", "Gateway", "HTTPRoute", "GRPCRoute",
              "AuthorizationPolicy", "Pod", "PodDisruptionBudget"}
API_VERSIONS = {
    "Namespace": "v1", "ConfigMap": "v1", "Secret": "v1", "Service": "v1",
    "ServiceAccount": "v1", "ResourceQuota": "v1", "Pod": "v1",
    "DaemonSet": "apps/v1", "Deployment": "apps/v1",
    "ClusterRole": "rbac.authorization.k8s.io/v1",
    "ClusterRoleBinding": "rbac.authorization.k8s.io/v1",
    "Role": "rbac.authorization.k8s.io/v1", "RoleBinding": "rbac.authorization.k8s.io/v1",
    "GatewayClass": "gateway.networking.k8s.io/v1", "Gateway": "gateway.networking.k8s.io/v1",
    "HTTPRoute": "gateway.networking.k8s.io/v1",
    "AuthorizationPolicy": "security.istio.io/v1",
    "PodDisruptionBudget": "policy/v1",
}
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
LABEL_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
CONFIGMAP_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
READ_VERBS = {"get", "list", "watch"}
ZTUNNEL_CAPS = {"NET_ADMIN", "SYS_ADMIN", "NET_RAW", "SYS_PTRACE"}
# The CNI gate: `gammamesh-cni install` in an init container of the ztunnel DaemonSet.
CNI_PLUGIN = "/usr/sbin/gammamesh-cni"
CNI_INSTALL_FLAGS = ("--bin-dir", "--conf-dir", "--socket", "--timeout", "--watch")


class Checker:
    def __init__(self, args):
        self.args = args
        self.problems = []
        self.notes = []
        self.docs = []  # (file, index, doc)
        self.cni_gates = []  # (where, None or (bin dir, conf dir) on the node) per ztunnel pod
        self.zt_env, self.wp_env, self.common_env = self.settings_env()

    def problem(self, where, msg):
        self.problems.append("%s: %s" % (where, msg))

    # --- the daemons' settings ---------------------------------------------------------
    def settings_env(self):
        def from_help(binary):
            if not binary:
                return set()
            try:
                out = subprocess.run([binary, "--help"], capture_output=True, text=True,
                                     timeout=20).stdout
            except OSError:
                return set()
            return set(re.findall(r"\benv (GM_[A-Z0-9_]+)", out)) | {"GM_SETTINGS"} \
                if "GM_" in out else set()

        common = set()
        if self.args.settings_header and os.path.exists(self.args.settings_header):
            text = open(self.args.settings_header, encoding="utf-8").read()
            m = re.search(r"#define GM_SETTINGS_COMMON\(.*?\n((?:.*\\\n)+.*)", text)
            if m:
                common = set(re.findall(r'"(GM_[A-Z0-9_]+)"', m.group(1))) | {"GM_SETTINGS"}
        return from_help(self.args.ztunnel), from_help(self.args.waypoint), common

    def check_env_names(self, where, daemon, names):
        known = self.zt_env if daemon == "ztunnel" else self.wp_env
        if daemon == "ztunnel" and not known:
            self.problem(where, "cannot read the settings from `ztunnel --help`")
            return
        for n in names:
            if not n.startswith("GM_"):
                continue
            if known:
                if n not in known:
                    self.problem(where, "%s is not a %s setting (see --help)" % (n, daemon))
            elif n in self.common_env:
                pass
            else:
                self.notes.append("%s: %s: not verifiable (waypoint --help lists no GM_* "
                                  "settings yet)" % (where, n))

    # --- per document ------------------------------------------------------------------
    def load(self, path):
        try:
            text = open(path, encoding="utf-8").read()
            docs = gmyaml.load_all(text, path)
        except (OSError, gmyaml.YAMLError) as e:
            self.problem(path, "does not parse: %s" % e)
            return
        for i, d in enumerate(docs):
            if d is None:
                continue
            self.docs.append((path, i, d))

    def where(self, path, doc):
        md = doc.get("metadata") or {}
        ns = md.get("namespace")
        return "%s: %s %s%s" % (os.path.basename(path), doc.get("kind"),
                                ns + "/" if ns else "", md.get("name"))

    def find(self, kind, name, ns=None):
        for _, _, d in self.docs:
            md = d.get("metadata") or {}
            if d.get("kind") == kind and md.get("name") == name and (ns is None or
                                                                     md.get("namespace") == ns):
                return d
        return None

    def check_meta(self, w, doc):
        for k in ("apiVersion", "kind", "metadata"):
            if k not in doc:
                self.problem(w, "no %s" % k)
                return False
        kind = doc["kind"]
        want = API_VERSIONS.get(kind)
        if want and doc["apiVersion"] != want:
            self.problem(w, "apiVersion %s, expected %s" % (doc["apiVersion"], want))
        md = doc["metadata"]
        if not isinstance(md, dict):
            self.problem(w, "metadata is not a map")
            return False
        name = md.get("name")
        if not isinstance(name, str) or len(name) > 253 or not DNS_SUBDOMAIN.match(name):
            self.problem(w, "metadata.name %r is not a DNS-1123 subdomain" % (name,))
        if kind in ("Namespace", "Service", "Deployment", "DaemonSet") and isinstance(name, str) \
                and (len(name) > 63 or not DNS_LABEL.match(name)):
            self.problem(w, "metadata.name %r is not a DNS-1123 label" % name)
        if kind in NAMESPACED and not md.get("namespace"):
            self.problem(w, "namespaced kind without metadata.namespace")
        if kind not in NAMESPACED and md.get("namespace"):
            self.problem(w, "cluster-scoped kind with metadata.namespace")
        self.check_labels(w + ": metadata.labels", md.get("labels"))
        ann = md.get("annotations") or {}
        for k, v in ann.items():
            if not isinstance(v, str):
                self.problem(w, "annotation %s: value %r is not a string" % (k, v))
        return True

    def check_labels(self, w, labels):
        if labels is None:
            return
        if not isinstance(labels, dict):
            self.problem(w, "not a map")
            return
        for k, v in labels.items():
            prefix, _, name = k.rpartition("/")
            if (prefix and (len(prefix) > 253 or not DNS_SUBDOMAIN.match(prefix))) or \
                    len(name) > 63 or not LABEL_NAME.match(name):
                self.problem(w, "bad label key %r" % k)
            if not isinstance(v, str):
                self.problem(w, "label %s: value %r is not a string (quote it)" % (k, v))
            elif len(v) > 63 or not LABEL_VALUE.match(v):
                self.problem(w, "label %s: bad value %r" % (k, v))

    def check_workload(self, w, doc):
        spec = doc.get("spec") or {}
        ns = doc["metadata"].get("namespace")
        sel = ((spec.get("selector") or {}).get("matchLabels")) or {}
        tmpl = spec.get("template") or {}
        tlabels = ((tmpl.get("metadata") or {}).get("labels")) or {}
        self.check_labels(w + ": template labels", tlabels)
        if not sel:
            self.problem(w, "no spec.selector.matchLabels")
        for k, v in sel.items():
            if tlabels.get(k) != v:
                self.problem(w, "selector %s=%s does not match the pod template labels" % (k, v))
        if tlabels.get("gammamesh.io/dataplane-mode") != "none":
            self.problem(w, "gammamesh pods must carry gammamesh.io/dataplane-mode: none")
        pod = tmpl.get("spec") or {}
        sa = pod.get("serviceAccountName")
        if sa and not self.find("ServiceAccount", sa, ns):
            self.problem(w, "serviceAccountName %s: no such ServiceAccount rendered in %s"
                         % (sa, ns))
        volumes = {}
        for v in pod.get("volumes") or []:
            if v.get("name") in volumes:
                self.problem(w, "duplicate volume %s" % v.get("name"))
            volumes[v.get("name")] = v
            if "configMap" in v:
                cm = v["configMap"].get("name")
                if not self.find("ConfigMap", cm, ns):
                    self.problem(w, "volume %s: ConfigMap %s is not rendered in %s"
                                 % (v["name"], cm, ns))
            if "secret" in v:
                self.notes.append("%s: expects Secret %s/%s (created by the operator)"
                                  % (w, ns, v["secret"].get("secretName")))
            for src in ("secret", "configMap"):
                mode = (v.get(src) or {}).get("defaultMode")
                if mode is not None and (not isinstance(mode, int) or not 0 <= mode <= 0o777):
                    self.problem(w, "volume %s: bad defaultMode %r" % (v["name"], mode))
        used = set()
        grace = pod.get("terminationGracePeriodSeconds")
        containers = pod.get("containers") or []
        inits = pod.get("initContainers") or []
        if not containers:
            self.problem(w, "no containers")
        names = [c.get("name") for c in containers + inits]
        for n in set(names):
            if names.count(n) > 1:
                self.problem(w, "container name %s used twice" % n)
        for c in inits:
            used |= self.check_cni_container(w, c, volumes, "init container")
        for c in containers:
            if (c.get("command") or [None])[0] == CNI_PLUGIN:  # cni-watch: checked by check_cni
                used |= self.check_cni_container(w, c, volumes, "container")
                continue
            cw = "%s: container %s" % (w, c.get("name"))
            if not isinstance(c.get("name"), str) or not DNS_LABEL.match(c["name"]):
                self.problem(cw, "bad container name")
            if not isinstance(c.get("image"), str) or not c["image"]:
                self.problem(cw, "no image")
            cmd = c.get("command") or []
            daemon = "ztunnel" if any("ztunnel" in str(x) for x in cmd) else \
                "waypoint" if any("waypoint" in str(x) for x in cmd) else None
            if daemon is None:
                self.problem(cw, "command runs neither gammamesh-ztunnel nor gammamesh-waypoint")
            ports = {}
            for p in c.get("ports") or []:
                n = p.get("containerPort")
                if not isinstance(n, int) or not 1 <= n <= 65535:
                    self.problem(cw, "bad containerPort %r" % (n,))
                if "name" in p:
                    if p["name"] in ports or len(p["name"]) > 15:
                        self.problem(cw, "bad or duplicate port name %r" % p["name"])
                    ports[p["name"]] = n
            env, names = {}, []
            for e in c.get("env") or []:
                n = e.get("name")
                names.append(n)
                if n in env:
                    self.problem(cw, "duplicate env %s" % n)
                if "value" in e and not isinstance(e["value"], str):
                    self.problem(cw, "env %s: value %r is not a string (quote it)"
                                 % (n, e["value"]))
                if ("value" in e) == ("valueFrom" in e):
                    self.problem(cw, "env %s: needs exactly one of value and valueFrom" % n)
                env[n] = e.get("value")
                rf = (e.get("valueFrom") or {}).get("resourceFieldRef")
                if rf and rf.get("containerName") not in (None, c.get("name")):
                    self.problem(cw, "env %s: resourceFieldRef names another container" % n)
            if daemon:
                self.check_env_names(cw, daemon, names)
            for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
                hg = (c.get(probe) or {}).get("httpGet")
                if hg:
                    port = hg.get("port")
                    if port not in ports.values() and port not in ports:
                        self.problem(cw, "%s port %r is not a container port" % (probe, port))
                    if port != 15021 and port != "status":
                        self.problem(cw, "%s should use the readiness port 15021" % probe)
            mounts = self.check_mounts(cw, c, volumes, used)
            for m in c.get("volumeMounts") or []:
                prop = m.get("mountPropagation")
                if prop not in (None, "None", "HostToContainer", "Bidirectional"):
                    self.problem(cw, "bad mountPropagation %r" % prop)
            sc = c.get("securityContext") or {}
            caps = sc.get("capabilities") or {}
            add = set(caps.get("add") or [])
            if "ALL" not in (caps.get("drop") or []):
                self.problem(cw, "capabilities must drop ALL")
            if sc.get("readOnlyRootFilesystem") is not True:
                self.problem(cw, "readOnlyRootFilesystem must be true")
            if "/tmp" not in mounts:
                self.problem(cw, "read-only root filesystem without a /tmp volume")
            if daemon == "ztunnel":
                if add != ZTUNNEL_CAPS:
                    self.problem(cw, "capabilities add %s, expected %s"
                                 % (sorted(add), sorted(ZTUNNEL_CAPS)))
                if "SYS_ADMIN" in add and sc.get("allowPrivilegeEscalation") is False:
                    self.problem(cw, "the API refuses allowPrivilegeEscalation: false "
                                 "with SYS_ADMIN")
                if sc.get("privileged"):
                    self.problem(cw, "must not be privileged")
                netns = [m for m in c.get("volumeMounts") or [] if m.get("mountPath") ==
                         "/run/netns"]
                if not netns or netns[0].get("mountPropagation") != "HostToContainer":
                    self.problem(cw, "needs /run/netns mounted with HostToContainer propagation")
                if pod.get("priorityClassName") != "system-node-critical":
                    self.problem(cw, "the node proxy should be system-node-critical")
                self.cni_gates.append((w, self.check_cni(w, pod, c, volumes)))
            elif daemon == "waypoint":
                if inits:
                    self.problem(cw, "the waypoint has no init containers")
                if add:
                    self.problem(cw, "the waypoint needs no capabilities, has %s" % sorted(add))
                psc = pod.get("securityContext") or {}
                if not (sc.get("runAsNonRoot") or psc.get("runAsNonRoot")):
                    self.problem(cw, "the waypoint must run as non-root")
            drain = env.get("GM_DRAIN_DEADLINE")
            if drain is not None:
                m = re.match(r"^([0-9]+)s$", drain) if isinstance(drain, str) else None
                if not m:
                    self.problem(cw, "GM_DRAIN_DEADLINE %r: expected whole seconds" % drain)
                else:
                    pre = 0
                    exec_cmd = (((c.get("lifecycle") or {}).get("preStop") or {})
                                .get("exec") or {}).get("command") or []
                    if len(exec_cmd) == 2 and exec_cmd[0] == "sleep":
                        pre = int(exec_cmd[1])
                    if not isinstance(grace, int) or grace < int(m.group(1)) + pre + 1:
                        self.problem(cw, "terminationGracePeriodSeconds %r leaves no margin over "
                                     "preStop %ds + drain %s" % (grace, pre, drain))
        for v in volumes:
            if v not in used:
                self.problem(w, "volume %s is not mounted" % v)

    def check_mounts(self, cw, c, volumes, used):
        """Each volumeMount names a volume (added to used) at a distinct absolute path; returns
        the mount paths."""
        mounts = set()
        for m in c.get("volumeMounts") or []:
            if m.get("name") not in volumes:
                self.problem(cw, "volumeMount %s: no such volume" % m.get("name"))
            used.add(m.get("name"))
            mp = m.get("mountPath")
            if not isinstance(mp, str) or not mp.startswith("/") or mp in mounts:
                self.problem(cw, "bad or duplicate mountPath %r" % (mp,))
            mounts.add(mp)
        return mounts

    def check_cni_container(self, w, c, volumes, kind):
        """What every init container, and the cni-watch container, need (they run the plugin's
        installer); returns the names of the volumes it mounts."""
        cw = "%s: %s %s" % (w, kind, c.get("name"))
        if not isinstance(c.get("name"), str) or not DNS_LABEL.match(c["name"]):
            self.problem(cw, "bad container name")
        if not isinstance(c.get("image"), str) or not c["image"]:
            self.problem(cw, "no image")
        if (c.get("command") or [None])[0] != CNI_PLUGIN:
            self.problem(cw, "the only init container runs %s install" % CNI_PLUGIN)
        used = set()
        self.check_mounts(cw, c, volumes, used)
        sc = c.get("securityContext") or {}
        caps = sc.get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []) or caps.get("add"):
            self.problem(cw, "capabilities must drop ALL and add none (it writes two "
                             "directories that root owns)")
        if sc.get("privileged") or sc.get("allowPrivilegeEscalation") is not False:
            self.problem(cw, "must not be privileged, and allowPrivilegeEscalation: false")
        if sc.get("readOnlyRootFilesystem") is not True:
            self.problem(cw, "readOnlyRootFilesystem must be true")
        if (sc.get("seccompProfile") or {}).get("type") != "RuntimeDefault":
            self.problem(cw, "seccompProfile must be RuntimeDefault")
        return used

    def check_cni(self, w, pod, zt, volumes):
        """The CNI gate of a ztunnel pod: None when it is off, else the node's (bin dir, conf
        dir). The init container's `--socket` (read by the plugin on the node) must be
        GM_CNI_SOCKET (where ztunnel listens in its container), on a hostPath mounted at the
        same path; the init container mounts the two CNI host directories writable and
        nothing else."""
        inits = [c for c in pod.get("initContainers") or []
                 if (c.get("command") or [None])[0] == CNI_PLUGIN]
        sock = next((e.get("value") for e in zt.get("env") or []
                     if e.get("name") == "GM_CNI_SOCKET"), None)
        if not inits and not sock:
            return None
        if not inits:
            self.problem(w, "GM_CNI_SOCKET is set but no init container installs gammamesh-cni")
            return None
        if not sock:
            self.problem(w, "an init container installs gammamesh-cni but ztunnel has no "
                            "GM_CNI_SOCKET (the plugin would never find it)")
        if len(inits) > 1:
            self.problem(w, "gammamesh-cni is installed by %d init containers" % len(inits))
        ic = inits[0]
        cw = "%s: init container %s" % (w, ic.get("name"))
        flags = self.cni_install_flags(cw, (ic.get("command") or []) + (ic.get("args") or []))
        if flags.get("--socket") != sock:
            self.problem(cw, "--socket %s is not ztunnel's GM_CNI_SOCKET %s"
                         % (flags.get("--socket"), sock))
        if ic.get("image") != zt.get("image") or \
                ic.get("imagePullPolicy") != zt.get("imagePullPolicy"):
            self.problem(cw, "must use ztunnel's image and pull policy (the plugin comes "
                             "from the same build)")
        host, mounted = {}, set()
        for m in ic.get("volumeMounts") or []:
            for flag in ("--bin-dir", "--conf-dir"):
                if m.get("mountPath") == flags.get(flag):
                    host[flag] = self.host_path(cw, m, volumes, flag)
                    mounted.add(m.get("name"))
            if m.get("name") not in mounted:
                self.problem(cw, "mounts %s: it needs the CNI bin and conf dirs only"
                             % m.get("mountPath"))
        for flag in ("--bin-dir", "--conf-dir"):
            if flag not in host:
                self.problem(cw, "%s %s is not a mounted volume" % (flag, flags.get(flag)))
        for m in zt.get("volumeMounts") or []:
            if m.get("name") in mounted:
                self.problem(w, "container ztunnel mounts the CNI directory volume %s"
                             % m.get("name"))
        if "--watch" in flags:
            self.problem(cw, "--watch in an init container: it never ends, the pod never starts")
        self.check_cni_watch(w, pod, ic, flags)
        if isinstance(sock, str):
            self.check_cni_socket(w, sock, zt, volumes)
        return host.get("--bin-dir"), host.get("--conf-dir")

    def check_cni_watch(self, w, pod, ic, init_flags):
        """The cni-watch container: the installer of the init container with --watch, on the
        same image, mounts and flags (it re-adds the very entry the init container wrote)."""
        watchers = [c for c in pod.get("containers") or []
                    if (c.get("command") or [None])[0] == CNI_PLUGIN]
        if len(watchers) != 1:
            self.problem(w, "%d containers run the CNI installer; expected one cni-watch "
                            "(without it a rewritten network configuration drops the gate)"
                         % len(watchers))
            return
        c = watchers[0]
        cw = "%s: container %s" % (w, c.get("name"))
        flags = self.cni_install_flags(cw, (c.get("command") or []) + (c.get("args") or []))
        t = flags.pop("--watch", None)
        if t is None or not (t.isdigit() and 1 <= int(t) <= 86400):
            self.problem(cw, "needs --watch with whole seconds, 1..86400 (got %r)" % (t,))
        init_flags = {k: v for k, v in init_flags.items() if k != "--watch"}
        if flags != init_flags:
            self.problem(cw, "installs %s, the init container %s: they must write the same "
                             "entry" % (flags, init_flags))
        if c.get("image") != ic.get("image") or c.get("imagePullPolicy") != ic.get(
                "imagePullPolicy"):
            self.problem(cw, "must use the init container's image and pull policy")
        strip = lambda ms: sorted((m.get("name"), m.get("mountPath"), bool(m.get("readOnly")))
                                  for m in ms or [])
        if strip(c.get("volumeMounts")) != strip(ic.get("volumeMounts")):
            self.problem(cw, "must mount exactly what the init container mounts")
        if not ((c.get("resources") or {}).get("limits") or {}).get("memory"):
            self.problem(cw, "needs a memory limit")

    def cni_install_flags(self, cw, argv):
        flags = {}
        if argv[1:2] != ["install"]:
            self.problem(cw, "runs %s, expected %s install" % (argv[:2], CNI_PLUGIN))
        rest = argv[2:]
        for i in range(0, len(rest), 2):
            flag, value = rest[i], (rest[i + 1] if i + 1 < len(rest) else None)
            if flag not in CNI_INSTALL_FLAGS or flag in flags or not isinstance(value, str) \
                    or value.startswith("--"):
                self.problem(cw, "bad, repeated or valueless argument %r" % (flag,))
                continue
            flags[flag] = value
        for flag in ("--bin-dir", "--conf-dir", "--socket"):
            if not flags.get(flag, "").startswith("/"):
                self.problem(cw, "needs %s with an absolute path" % flag)
        t = flags.get("--timeout")
        if t is not None and not (t.isdigit() and 1 <= int(t) <= 600):
            self.problem(cw, "--timeout %r: whole seconds, 1..600" % t)
        return flags

    def host_path(self, cw, mount, volumes, flag):
        hp = (volumes.get(mount.get("name")) or {}).get("hostPath") or {}
        if not hp.get("path") or mount.get("readOnly"):
            self.problem(cw, "%s: volume %s must be a writable hostPath"
                         % (flag, mount.get("name")))
            return None
        if hp.get("type") not in ("Directory", "DirectoryOrCreate"):
            self.problem(cw, "%s: hostPath type %r, expected Directory" % (flag, hp.get("type")))
        return os.path.normpath(hp["path"])

    def check_cni_socket(self, w, sock, zt, volumes):
        d = os.path.dirname(sock)
        if not sock.startswith("/") or not d or d == "/":
            self.problem(w, "GM_CNI_SOCKET %r: an absolute path in its own directory" % sock)
            return
        m = next((m for m in zt.get("volumeMounts") or [] if m.get("mountPath") == d), None)
        hp = (volumes.get(m.get("name")) or {}).get("hostPath") if m else None
        if not hp or m.get("readOnly"):
            self.problem(w, "GM_CNI_SOCKET %s: ztunnel needs %s as a writable hostPath mount"
                         % (sock, d))
        elif os.path.normpath(hp.get("path") or "") != d:
            self.problem(w, "GM_CNI_SOCKET %s: hostPath %s is mounted at %s; the plugin on the "
                            "node looks in %s" % (sock, hp.get("path"), d, d))
        elif hp.get("type") != "DirectoryOrCreate":
            self.problem(w, "hostPath %s: type DirectoryOrCreate (nothing else makes it)" % d)

    def check_cni_expected(self, want):
        """--cni-gate: `off`, or `BINDIR,CONFDIR` (on, with these node directories)."""
        gates = [g for _, g in self.cni_gates]
        if want == "off":
            for where, g in self.cni_gates:
                if g is not None:
                    self.problem(where, "the CNI gate is rendered; expected it off")
            return
        bin_dir, _, conf_dir = want.partition(",")
        if not gates:
            self.problem("manifests", "no ztunnel DaemonSet, expected one with the CNI gate")
        for where, g in self.cni_gates:
            if g != (os.path.normpath(bin_dir), os.path.normpath(conf_dir)):
                self.problem(where, "CNI gate with node directories %s, expected (%s, %s)"
                             % (g, bin_dir, conf_dir))

    def check_service(self, w, doc):
        spec = doc.get("spec") or {}
        ns = doc["metadata"].get("namespace")
        sel = spec.get("selector") or {}
        matched = False
        for _, _, d in self.docs:
            if d.get("kind") in ("Deployment", "DaemonSet") and \
                    (d.get("metadata") or {}).get("namespace") == ns:
                tl = (((d.get("spec") or {}).get("template") or {}).get("metadata") or {}) \
                    .get("labels") or {}
                if sel and all(tl.get(k) == v for k, v in sel.items()):
                    matched = True
        if sel and not matched:
            self.problem(w, "selector %s matches no rendered workload" % sel)
        names = set()
        for p in spec.get("ports") or []:
            if not isinstance(p.get("port"), int) or not 1 <= p["port"] <= 65535:
                self.problem(w, "bad port %r" % p.get("port"))
            if p.get("name") in names:
                self.problem(w, "duplicate port name %s" % p.get("name"))
            names.add(p.get("name"))

    def check_binding(self, w, doc):
        ref = doc.get("roleRef") or {}
        if ref.get("kind") == "ClusterRole" and not self.find("ClusterRole", ref.get("name")):
            self.problem(w, "roleRef ClusterRole %s is not rendered" % ref.get("name"))
        for s in doc.get("subjects") or []:
            if s.get("kind") == "ServiceAccount" and \
                    not self.find("ServiceAccount", s.get("name"), s.get("namespace")):
                self.problem(w, "subject ServiceAccount %s/%s is not rendered"
                             % (s.get("namespace"), s.get("name")))

    def check_role(self, w, doc):
        for r in doc.get("rules") or []:
            for k in ("apiGroups", "resources", "verbs"):
                if not isinstance(r.get(k), list) or not all(isinstance(x, str) for x in r[k]):
                    self.problem(w, "rule %s must be a list of strings" % k)
            extra = set(r.get("verbs") or []) - READ_VERBS
            # the one write: waypoints update the status of HTTPRoutes (and nothing else)
            if extra and not (set(r.get("resources") or []) == {"httproutes/status"}
                              and extra == {"update"}):
                self.problem(w, "write verbs %s: the daemons only read, and update "
                                "httproutes/status" % sorted(extra))

    def check_gateway(self, w, doc):
        spec = doc.get("spec") or {}
        if spec.get("gatewayClassName") != "gammamesh-waypoint":
            return
        if spec.get("listeners") != [{"name": "mesh", "port": 15008, "protocol": "HBONE"}]:
            self.problem(w, "a waypoint has exactly one listener {name: mesh, port: 15008, "
                         "protocol: HBONE}")
        ns, name = doc["metadata"].get("namespace"), doc["metadata"]["name"]
        dep = self.find("Deployment", name, ns)
        if dep is None:
            self.notes.append("%s: no waypoint Deployment rendered for it" % w)
            return
        tmpl = dep["spec"]["template"]
        if tmpl["metadata"]["labels"].get("gateway.networking.k8s.io/gateway-name") != name:
            self.problem(w, "waypoint pods need gateway.networking.k8s.io/gateway-name: %s" % name)
        if tmpl["spec"].get("serviceAccountName") != name:
            self.problem(w, "waypoint pods run as service account %s" % name)

    def check_all(self):
        seen = {}
        for path, i, doc in self.docs:
            if not isinstance(doc, dict):
                self.problem("%s: document %d" % (path, i + 1), "not a map")
                continue
            w = self.where(path, doc)
            if not self.check_meta(w, doc):
                continue
            md = doc["metadata"]
            key = (doc["apiVersion"].split("/")[0], doc["kind"], md.get("namespace"),
                   md.get("name"))
            if key in seen:
                self.problem(w, "defined twice (also in %s)" % seen[key])
            seen[key] = os.path.basename(path)
            try:
                self.check_kind(w, doc)
            except (AttributeError, KeyError, TypeError, ValueError) as e:
                self.problem(w, "malformed (%s: %s)" % (type(e).__name__, e))
        if self.args.cni_gate:
            self.check_cni_expected(self.args.cni_gate)

    def check_kind(self, w, doc):
        md = doc["metadata"]
        kind = doc["kind"]
        if kind in ("DaemonSet", "Deployment"):
            self.check_workload(w, doc)
        elif kind == "Service":
            self.check_service(w, doc)
        elif kind in ("ClusterRoleBinding", "RoleBinding"):
            self.check_binding(w, doc)
        elif kind in ("ClusterRole", "Role"):
            self.check_role(w, doc)
        elif kind == "Gateway":
            self.check_gateway(w, doc)
        elif kind == "GatewayClass" and md.get("name") == "gammamesh-waypoint":
            if (doc.get("spec") or {}).get("controllerName") != \
                    "gammamesh.io/mesh-controller":
                self.problem(w, "controllerName must be gammamesh.io/mesh-controller")
        elif kind == "ConfigMap":
            for k, v in (doc.get("data") or {}).items():
                if not CONFIGMAP_KEY.match(k) or not isinstance(v, str):
                    self.problem(w, "data %s: bad key or non-string value" % k)
        elif kind == "Namespace":
            mode = (md.get("labels") or {}).get("gammamesh.io/dataplane-mode")
            if mode not in (None, "ambient", "none"):
                self.problem(w, "gammamesh.io/dataplane-mode must be ambient or none")

    # --- the daemons' own loader -------------------------------------------------------
    def ztunnel_check(self, files):
        with tempfile.TemporaryDirectory(prefix="gm-manifests-") as tmp:
            for n, f in enumerate(files):
                with open(f, encoding="utf-8") as src, \
                        open(os.path.join(tmp, "%02d-%s" % (n, os.path.basename(f))), "w",
                             encoding="utf-8") as dst:
                    dst.write(src.read())
            self.run_check(tmp, "rendered manifests")
        for path, _, doc in self.docs:
            if doc.get("kind") != "ConfigMap":
                continue
            files = {k: v for k, v in (doc.get("data") or {}).items()
                     if k.endswith((".yaml", ".yml", ".json"))}
            if not files:
                continue
            with tempfile.TemporaryDirectory(prefix="gm-configmap-") as tmp:
                for k, v in files.items():
                    with open(os.path.join(tmp, k), "w", encoding="utf-8") as f:
                        f.write(v)
                self.run_check(tmp, self.where(path, doc) + " data")

    def run_check(self, directory, what):
        r = subprocess.run([self.args.ztunnel, "--check", "--config-dir", directory],
                           capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            out = (r.stdout + r.stderr).strip().replace(directory + "/", "")
            self.problem(what, "ztunnel --check failed:\n  " + out.replace("\n", "\n  "))


# Mutations of the default rendering that the checks must catch (--self-test).
MUTATIONS = [
    ("env value not a string", 'value: "30s"', "value: 30"),
    ("selector mismatch", "matchLabels:\n      app.kubernetes.io/name: gammamesh-ztunnel",
     "matchLabels:\n      app.kubernetes.io/name: gammamesh-other"),
    ("netns mount lost", "mountPath: /run/netns", "mountPath: /run/netns2"),
    ("capability dropped", "            - SYS_ADMIN\n", ""),
    ("grace below drain", "terminationGracePeriodSeconds: 35", "terminationGracePeriodSeconds: 30"),
    ("unknown setting", "name: GM_LOG_LEVEL", "name: GM_LOGLEVEL"),
    ("YAML error", "kind: DaemonSet", "kind: DaemonSet: x"),
    ("write verb", '["get", "list", "watch"]', '["get", "list", "watch", "create"]'),
    ("missing volume", "- name: tmp\n        emptyDir: {}", "- name: scratch\n        emptyDir: {}"),
    ("YAML 1.1 boolean", 'prometheus.io/scrape: "true"', "prometheus.io/scrape: yes"),
    ("probe port", "port: 15021", "port: 15022"),
    ("dangling roleRef", "name: gammamesh-reader\n  labels", "name: gammamesh-ztunnel\n  labels"),
    ("CNI init container lost", "initContainers:", "initContainerz:"),
    ("CNI socket env lost",
     "        - name: GM_CNI_SOCKET\n          value: /var/run/gammamesh/cni.sock\n", ""),
    ("CNI socket mismatch", "- --socket\n        - /var/run/gammamesh/cni.sock",
     "- --socket\n        - /run/gammamesh/cni.sock"),
    ("CNI socket dir not mounted", "mountPath: /var/run/gammamesh\n",
     "mountPath: /var/run/gammamesh-x\n"),
    ("CNI socket host path", "path: /var/run/gammamesh\n", "path: /run/gammamesh\n"),
    ("CNI conf dir read-only", "mountPath: /host/etc/cni/net.d\n",
     "mountPath: /host/etc/cni/net.d\n          readOnly: true\n"),
    ("CNI bin dir elsewhere", "path: /opt/cni/bin\n", "path: /opt/cni/bin2\n"),
    ("CNI installer capability", "            - ALL\n          seccompProfile",
     "            - ALL\n            add:\n            - DAC_OVERRIDE\n          seccompProfile"),
    ("CNI watcher never watches", '        - --watch\n        - "10"\n', ""),
    ("CNI init container watches",
     "        - /usr/sbin/gammamesh-cni\n        - install\n",
     '        - /usr/sbin/gammamesh-cni\n        - install\n        - --watch\n        - "5"\n'),
    ("CNI watcher lost",
     "        - /usr/sbin/gammamesh-cni\n        - install\n        - --bin-dir\n"
     "        - /host/opt/cni/bin\n        - --conf-dir\n        - /host/etc/cni/net.d\n"
     "        - --socket\n        - /var/run/gammamesh/cni.sock\n        - --watch\n",
     "        - /bin/sleep\n        - install\n        - --bin-dir\n"
     "        - /host/opt/cni/bin\n        - --conf-dir\n        - /host/etc/cni/net.d\n"
     "        - --socket\n        - /var/run/gammamesh/cni.sock\n        - --watch\n"),
    ("CNI installer mounts more",
     "        - name: cni-conf\n          mountPath: /host/etc/cni/net.d\n",
     "        - name: cni-conf\n          mountPath: /host/etc/cni/net.d\n        - name: ca\n"
     "          mountPath: /ca\n"),
]


def self_test(args, path):
    text = open(path, encoding="utf-8").read()
    failures = 0
    with tempfile.TemporaryDirectory(prefix="gm-selftest-") as tmp:
        for what, old, new in MUTATIONS:
            if old not in text:
                print("self-test: %s: pattern not in %s" % (what, path))
                failures += 1
                continue
            mutated = os.path.join(tmp, "mutated.yaml")
            with open(mutated, "w", encoding="utf-8") as f:
                f.write(text.replace(old, new, 1))
            c = Checker(args)
            c.load(mutated)
            c.check_all()
            if not c.problems:
                print("self-test: %s: not caught" % what)
                failures += 1
    print("self-test: %d of %d mutations caught" % (len(MUTATIONS) - failures, len(MUTATIONS)))
    return 1 if failures else 0


def main(argv):
    ap = argparse.ArgumentParser()
    ap.add_argument("--self-test", action="store_true",
                    help="check that mutations of the (first) file are caught")
    ap.add_argument("--ztunnel", required=True)
    ap.add_argument("--waypoint")
    ap.add_argument("--settings-header")
    ap.add_argument("-q", "--quiet", action="store_true")
    ap.add_argument("--cni-gate", metavar="off|BINDIR,CONFDIR",
                    help="expect the CNI gate off, or on with these node directories")
    ap.add_argument("files", nargs="+")
    a = ap.parse_args(argv)
    if a.self_test:
        return self_test(a, a.files[0])
    c = Checker(a)
    for f in a.files:
        c.load(f)
    c.check_all()
    if not c.problems:
        c.ztunnel_check(a.files)
    if not a.quiet:
        for n in sorted(set(c.notes)):
            print("note: " + n)
    for p in c.problems:
        print("problem: " + p)
    print("%d documents in %d files: %d problems" % (len(c.docs), len(a.files), len(c.problems)))
    return 1 if c.problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
