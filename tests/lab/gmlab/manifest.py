"""Reading Kubernetes manifests: parse, check the fields the lab relies on, fill in defaults.

Every problem is reported as `file:line: Kind namespace/name: field: reason`, all of them at once.
"""

import ipaddress
import re
import sys

from . import yamlish
from .util import LabError, now_rfc3339

# Kinds that have no namespace. Every other kind is namespaced (metadata.namespace: default).
CLUSTER_SCOPED = {
    "Namespace", "Node", "GatewayClass", "ClusterRole", "ClusterRoleBinding",
    "CustomResourceDefinition", "PersistentVolume", "StorageClass", "PriorityClass",
    "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration", "APIService",
    "IngressClass", "RuntimeClass",
}

DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
LABEL_KEY = re.compile(r"([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
PROTOCOLS = ("TCP", "UDP", "SCTP")
VIP_NET = ipaddress.ip_network("198.19.0.0/17")


class Obj:
    """One object from a manifest file."""

    def __init__(self, body, where, stamped=False):
        self.body = body
        self.where = where
        self.stamped = stamped      # True when the lab filled in creationTimestamp
        self.kind = body["kind"]
        self.name = body["metadata"]["name"]
        self.ns = body["metadata"].get("namespace", "")

    @property
    def key(self):
        return object_key(self.kind, self.ns, self.name)


def object_key(kind, ns, name):
    return "%s/%s/%s" % (kind, ns, name)


def display(kind, ns, name):
    return "%s %s" % (kind, "%s/%s" % (ns, name) if ns else name)


class _Checker:
    """Checks one document and collects its errors with the line of each bad field."""

    def __init__(self, doc, file, line):
        self.doc, self.file, self.line = doc, file, line
        self.errors = []
        meta = doc.get("metadata") if isinstance(doc, dict) else None
        meta = meta if isinstance(meta, dict) else {}
        kind = doc.get("kind", "?") if isinstance(doc, dict) else "?"
        ns = meta.get("namespace") or ("" if kind in CLUSTER_SCOPED else "default")
        self.what = display(kind, ns, meta.get("name", "?"))

    def fail(self, path, msg):
        line = yamlish.locate(self.doc, path) or self.line
        field = ".".join(str(p) if isinstance(p, str) else "[%d]" % p for p in path)
        field = field.replace(".[", "[")
        self.errors.append("%s:%s: %s: %s%s" % (self.file, line, self.what,
                                                field + ": " if field else "", msg))

    def get(self, path):
        node = self.doc
        for p in path:
            if isinstance(node, dict) and isinstance(p, str):
                node = node.get(p)
            elif isinstance(node, list) and isinstance(p, int) and p < len(node):
                node = node[p]
            else:
                return None
        return node

    def want(self, path, types, what, required=False):
        """The value at path if it has one of the types; records an error otherwise."""
        value = self.get(path)
        if value is None:
            if required:
                self.fail(path, "required")
            return None
        if not isinstance(value, types) or isinstance(value, bool) and bool not in _tuple(types):
            self.fail(path, "must be %s, got %r" % (what, value))
            return None
        return value

    def port(self, path, required=True):
        value = self.want(path, int, "a port number (1-65535)", required)
        if value is not None and not 1 <= value <= 65535:
            self.fail(path, "must be a port number (1-65535), got %d" % value)
        return value

    def string_map(self, path, key_re=None, value_re=None):
        value = self.want(path, dict, "a mapping")
        for k, v in (value or {}).items():
            if not isinstance(v, str):
                self.fail(path + [k], "must be a string (quote it), got %r" % (v,))
            elif value_re and (len(v) > 63 or not value_re.match(v)):
                self.fail(path + [k], "invalid label value %r" % v)
            if key_re and not key_re.match(k):
                self.fail(path + [k], "invalid label key %r" % k)
        return value or {}

    def string_list(self, path):
        value = self.want(path, list, "a list of strings")
        for i, v in enumerate(value or []):
            if not isinstance(v, str):
                self.fail(path + [i], "must be a string (quote it), got %r" % (v,))
        return value


def _tuple(types):
    return types if isinstance(types, tuple) else (types,)


def _check_metadata(c, kind):
    c.want(["apiVersion"], str, "a string", required=True)
    if c.want(["metadata"], dict, "a mapping", required=True) is None:
        return
    name = c.want(["metadata", "name"], str, "a string", required=True)
    name_re = DNS_LABEL if kind == "Namespace" else DNS_SUBDOMAIN
    if name is not None and (len(name) > 253 or not name_re.match(name)):
        c.fail(["metadata", "name"], "invalid name %r (lower case letters, digits, '-')" % name)
    ns = c.want(["metadata", "namespace"], str, "a string")
    if ns is not None and (len(ns) > 63 or not DNS_LABEL.match(ns)):
        c.fail(["metadata", "namespace"], "invalid namespace %r" % ns)
    if ns is not None and kind in CLUSTER_SCOPED:
        c.fail(["metadata", "namespace"], "%s is cluster-scoped" % kind)
    c.string_map(["metadata", "labels"], LABEL_KEY, LABEL_VALUE)
    c.string_map(["metadata", "annotations"])


def _check_container(c, path):
    if c.want(path, dict, "a mapping", required=True) is None:
        return
    c.want(path + ["name"], str, "a string", required=True)
    c.want(path + ["image"], str, "a string", required=True)
    c.string_list(path + ["args"])
    c.string_list(path + ["command"])
    for i, env in enumerate(c.want(path + ["env"], list, "a list") or []):
        if c.want(path + ["env", i], dict, "a mapping") is not None:
            c.want(path + ["env", i, "name"], str, "a string", required=True)
            c.want(path + ["env", i, "value"], str, "a string (quote it)")
    for i, _ in enumerate(c.want(path + ["ports"], list, "a list") or []):
        p = path + ["ports", i]
        if c.want(p, dict, "a mapping") is None:
            continue
        c.port(p + ["containerPort"])
        c.want(p + ["name"], str, "a string")
        proto = c.want(p + ["protocol"], str, "a string")
        if proto is not None and proto not in PROTOCOLS:
            c.fail(p + ["protocol"], "must be one of %s" % ", ".join(PROTOCOLS))


def _check_pod_spec(c, path):
    if c.want(path, dict, "a mapping", required=True) is None:
        return
    containers = c.want(path + ["containers"], list, "a non-empty list", required=True)
    if containers == []:
        c.fail(path + ["containers"], "must be a non-empty list")
    for i, _ in enumerate(containers or []):
        _check_container(c, path + ["containers", i])
    c.want(path + ["serviceAccountName"], str, "a string")
    if c.get(path + ["hostNetwork"]) is True:
        c.fail(path + ["hostNetwork"], "host-network pods are not supported by the lab")


def _check_deployment(c):
    if c.want(["spec"], dict, "a mapping", required=True) is None:
        return
    replicas = c.want(["spec", "replicas"], int, "a number")
    if replicas is not None and replicas < 0:
        c.fail(["spec", "replicas"], "must not be negative")
    selector = c.string_map(["spec", "selector", "matchLabels"])
    if c.want(["spec", "template"], dict, "a mapping", required=True) is None:
        return
    labels = c.string_map(["spec", "template", "metadata", "labels"], LABEL_KEY, LABEL_VALUE)
    for k, v in selector.items():
        if labels.get(k) != v:
            c.fail(["spec", "selector", "matchLabels", k],
                   "selector %s=%s does not match the template's labels" % (k, v))
    c.string_map(["spec", "template", "metadata", "annotations"])
    _check_pod_spec(c, ["spec", "template", "spec"])


def _check_service(c):
    if c.want(["spec"], dict, "a mapping", required=True) is None:
        return
    stype = c.want(["spec", "type"], str, "a string") or "ClusterIP"
    if stype not in ("ClusterIP", "NodePort", "LoadBalancer", "ExternalName"):
        c.fail(["spec", "type"], "unknown Service type %r" % stype)
    c.string_map(["spec", "selector"])
    ip = c.want(["spec", "clusterIP"], str, "a string")
    if ip not in (None, "", "None"):
        try:
            if ipaddress.ip_address(ip) not in VIP_NET:
                c.fail(["spec", "clusterIP"], "the lab's VIPs are in %s, got %s" % (VIP_NET, ip))
        except ValueError:
            c.fail(["spec", "clusterIP"], "not an IPv4 address: %r" % ip)
    ports = c.want(["spec", "ports"], list, "a list") or []
    if not ports and stype != "ExternalName" and ip != "None":
        c.fail(["spec", "ports"], "a Service needs at least one port")
    for i, _ in enumerate(ports):
        p = ["spec", "ports", i]
        if c.want(p, dict, "a mapping") is None:
            continue
        c.port(p + ["port"])
        name = c.want(p + ["name"], str, "a string")
        if name is None and len(ports) > 1:
            c.fail(p + ["name"], "required when a Service has several ports")
        target = c.get(p + ["targetPort"])
        if isinstance(target, int) and not isinstance(target, bool):
            c.port(p + ["targetPort"])
        elif target is not None and not isinstance(target, str):
            c.fail(p + ["targetPort"], "must be a port number or a container port name")
        proto = c.want(p + ["protocol"], str, "a string")
        if proto is not None and proto not in PROTOCOLS:
            c.fail(p + ["protocol"], "must be one of %s" % ", ".join(PROTOCOLS))


def _check_gateway(c):
    if c.want(["spec"], dict, "a mapping", required=True) is None:
        return
    c.want(["spec", "gatewayClassName"], str, "a string", required=True)
    c.want(["spec", "listeners"], list, "a list")


KIND_CHECKS = {
    "Deployment": _check_deployment,
    "Pod": lambda c: _check_pod_spec(c, ["spec"]),
    "Service": _check_service,
    "Gateway": _check_gateway,
}


def check(doc, file, line):
    """The list of problems with one document (empty when it is fine)."""
    c = _Checker(doc, file, line)
    if not isinstance(doc, dict):
        c.fail([], "a manifest must be a mapping, got %s" % type(doc).__name__)
        return c.errors
    kind = c.want(["kind"], str, "a string", required=True)
    if kind is None:
        return c.errors
    _check_metadata(c, kind)
    if not c.errors and kind in KIND_CHECKS:
        KIND_CHECKS[kind](c)
    return c.errors


def fill_defaults(body):
    """Default metadata.namespace (namespaced kinds) and metadata.creationTimestamp."""
    meta = body["metadata"]
    if body["kind"] not in CLUSTER_SCOPED and not meta.get("namespace"):
        meta["namespace"] = "default"
    if not meta.get("creationTimestamp"):
        meta["creationTimestamp"] = now_rfc3339()
    return body


def _documents(text, file):
    """(line, document) pairs of a YAML stream, with List objects expanded into their items."""
    for line, doc in yamlish.load_all(text, file):
        items = doc.get("items") if isinstance(doc, dict) else None
        if isinstance(doc, dict) and str(doc.get("kind", "")).endswith("List") \
                and isinstance(items, list):
            for i, item in enumerate(items):
                yield items.item_lines[i] if isinstance(items, yamlish.Seq) else line, item
        else:
            yield line, doc


def parse_text(text, file):
    """Objects in one manifest text; LabError listing every problem found."""
    try:
        docs = list(_documents(text, file))
    except yamlish.YamlError as e:
        raise LabError(str(e)) from None
    errors, objs = [], []
    for line, doc in docs:
        problems = check(doc, file, line)
        if problems:
            errors += problems
            continue
        body = yamlish.plain(doc)
        stamped = not body["metadata"].get("creationTimestamp")
        objs.append(Obj(fill_defaults(body), "%s:%d" % (file, line), stamped))
    if errors:
        raise LabError("invalid manifest:\n  " + "\n  ".join(errors))
    return objs


def load_files(files):
    """Objects from manifest files ('-' reads stdin), in order; all problems reported at once."""
    objs, errors = [], []
    for f in files:
        try:
            if f == "-":
                text = sys.stdin.read()
            else:
                with open(f) as fh:
                    text = fh.read()
        except OSError as e:
            errors.append("%s: %s" % (f, e.strerror))
            continue
        try:
            objs += parse_text(text, f)
        except LabError as e:
            errors.append(str(e))
    if errors:
        raise LabError("\n".join(errors))
    return objs
