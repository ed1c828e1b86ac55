"""What the lab runs for an object: workloads (Deployments, bare Pods, waypoint Gateways),
the local program behind a container image, pod names, and the ports a pod is Ready on."""

import hashlib
import json
import random
import re

WAYPOINT_CLASS = "gammamesh-waypoint"
WAYPOINT_IMAGE = "gammamesh/waypoint:lab"
MESH_LABEL = "gammamesh.io/dataplane-mode"
GATEWAY_NAME_LABEL = "gateway.networking.k8s.io/gateway-name"
HBONE_PORT = 15008
NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # Kubernetes' generated-name alphabet


def program_for(image):
    """Which local program a container image stands for: 'echo', 'waypoint' or None."""
    if "gateway-api/conformance/echo" in image or "echo-basic" in image \
            or "echo-advanced" in image:
        return "echo"
    if "gammamesh" in image and "waypoint" in image:
        return "waypoint"
    return None


def _hash_name(data, length):
    """A short name in Kubernetes' alphabet derived from data."""
    n = int.from_bytes(hashlib.sha256(data.encode()).digest(), "big")
    out = []
    for _ in range(length):
        n, r = divmod(n, len(NAME_ALPHABET))
        out.append(NAME_ALPHABET[r])
    return "".join(out)


def random_name(length):
    return "".join(random.choice(NAME_ALPHABET) for _ in range(length))


class Workload:
    """Something that wants pods: a Deployment (the user's, or a waypoint's) or a bare Pod."""

    def __init__(self, owner, ns, name, replicas, template, bare=False):
        self.owner = owner          # key of the object that asked for the pods
        self.ns = ns
        self.name = name
        self.replicas = replicas
        self.template = template    # {"metadata": {labels, annotations}, "spec": pod spec}
        self.bare = bare
        self.hash = _hash_name(json.dumps(template, sort_keys=True), 10)


def deployment_workload(key, body):
    spec = body["spec"]
    tmpl = spec["template"]
    template = {"metadata": {"labels": dict(tmpl.get("metadata", {}).get("labels") or {}),
                             "annotations": dict(tmpl.get("metadata", {}).get("annotations")
                                                 or {})},
                "spec": tmpl["spec"]}
    replicas = spec.get("replicas", 1)
    return Workload(key, body["metadata"]["namespace"], body["metadata"]["name"],
                    1 if replicas is None else replicas, template)


def pod_workload(key, body):
    meta = body["metadata"]
    template = {"metadata": {"labels": dict(meta.get("labels") or {}),
                             "annotations": dict(meta.get("annotations") or {})},
                "spec": body["spec"]}
    return Workload(key, meta["namespace"], meta["name"], 1, template, bare=True)


def waypoint_workload(key, body):
    """The Deployment the lab makes for a Gateway of class gammamesh-waypoint."""
    name = body["metadata"]["name"]
    template = {
        "metadata": {"labels": {GATEWAY_NAME_LABEL: name, MESH_LABEL: "none"},
                     "annotations": {}},
        "spec": {"serviceAccountName": name,
                 "containers": [{"name": "waypoint", "image": WAYPOINT_IMAGE,
                                 "ports": [{"containerPort": HBONE_PORT, "name": "hbone",
                                            "protocol": "TCP"}]}]},
    }
    return Workload(key, body["metadata"]["namespace"], name, 1, template)


def target_port(rec, port):
    """The pod port a Service port sends to (a named targetPort is looked up in the pod)."""
    target = port.get("targetPort", port["port"])
    if isinstance(target, int):
        return target
    for c in rec["spec"]["containers"]:
        for p in c.get("ports") or []:
            if p.get("name") == target:
                return p["containerPort"]
    return None


_ECHO_PORT_FLAG = re.compile(r"--(port|grpc|tcp|tls)(?:=(.*))?$")


def echo_ports(args):
    """Ports the echo server opens for these arguments, as the conformance image does:
    every --port/--grpc/--tcp/--tls value (comma lists too), and --port 8080 and --grpc 7070
    when those flags are not given."""
    ports, seen = set(), set()
    for i, arg in enumerate(args):
        m = _ECHO_PORT_FLAG.match(arg)
        if not m:
            continue
        value = m.group(2) if m.group(2) is not None else \
            (args[i + 1] if i + 1 < len(args) else "")
        seen.add(m.group(1))
        ports |= {int(p) for p in value.split(",") if p.isdigit() and 0 < int(p) < 65536}
    if "port" not in seen:
        ports.add(8080)
    if "grpc" not in seen:
        ports.add(7070)
    return ports


def declared_ports(container):
    return {p["containerPort"] for p in container.get("ports") or []
            if p.get("protocol", "TCP") == "TCP"}


def wait_ports(rec):
    """TCP ports the pod's programs must listen on before the pod is Ready.

    For the echo server, the ports its arguments ask for (declared containerPorts it is not
    asked to serve stay closed, as with the real image: the conformance consumer pod declares
    8443 and 9090 but runs with no arguments). For other programs, the declared
    containerPorts. Containers the lab runs nothing for are not waited for.
    """
    ports = set()
    for c in rec["spec"]["containers"]:
        prog = program_for(c["image"])
        if prog == "echo":
            ports |= echo_ports(list(c.get("args") or []))
        elif prog is not None:
            ports |= declared_ports(c)
    return ports
