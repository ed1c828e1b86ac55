"""The lab's network: namespaces, veths, addresses and routes. Nothing here touches the
machine's own network namespace: every `ip` command runs with `-n <lab namespace>`.

Layout (K = node index, n = pod octet):
  <prefix>underlay   bridge br0; one port nK per node
  <prefix>nodeK      eth0 = 198.19.255.K/24 on the bridge; lo holds 198.18.K.1/32, the pods'
                     gateway; a route per pod (198.18.K.n/32 dev podN) and per other node
                     (198.18.M.0/24 via 198.19.255.M); forwarding on
  <prefix><ns>-<pod> eth0 = 198.18.K.n/32, default via 198.18.K.1
"""

import ctypes
import hashlib
import os
import re
import socket
import threading

from .util import LabError, run, write_in_place

CLONE_NEWNET = 0x40000000
NETNS_DIR = "/run/netns"
ETC_NETNS = "/etc/netns"
MAX_NODES = 250


def underlay_name(prefix):
    return prefix + "underlay"


def node_name(k):
    return "node%d" % k


def node_netns(prefix, k):
    return prefix + node_name(k)


def node_ip(k):
    return "198.19.255.%d" % k


def pod_gateway(k):
    return "198.18.%d.1" % k


def pod_cidr(k):
    return "198.18.%d.0/24" % k


def pod_netns(prefix, ns, pod):
    """A readable, bounded network namespace name for a pod: <prefix><ns>-<pod>."""
    base = re.sub(r"[^a-z0-9-]", "-", "%s-%s" % (ns, pod))
    room = 60 - len(prefix)
    if len(base) > room:
        digest = hashlib.sha1(("%s/%s" % (ns, pod)).encode()).hexdigest()[:8]
        base = base[: room - 9].rstrip("-") + "-" + digest
    return prefix + base


def list_netns():
    """Names of all network namespaces `ip netns` knows."""
    res = run(["ip", "netns", "list"], check=False)
    return [line.split()[0] for line in res.stdout.splitlines() if line.strip()]


def ip_batch(netns, commands):
    """Run several `ip` commands inside netns in one process."""
    run(["ip", "-n", netns, "-batch", "-"], input="\n".join(commands) + "\n")


def sysctl(netns, settings):
    argv = ["ip", "netns", "exec", netns, "sysctl", "-q", "-w"]
    run(argv + ["%s=%s" % kv for kv in settings.items()])


def add_netns(name):
    if os.path.exists(os.path.join(NETNS_DIR, name)):
        raise LabError("network namespace %s already exists (a crashed run? try `lab down`)"
                       % name)
    run(["ip", "netns", "add", name])
    ip_batch(name, ["link set lo up"])


def del_netns(name):
    """Delete a network namespace if it exists; its veths go with it."""
    if os.path.exists(os.path.join(NETNS_DIR, name)):
        run(["ip", "netns", "del", name], check=False)


def del_link(netns, name):
    """Delete a link (both ends of a veth) if it exists."""
    run(["ip", "-n", netns, "link", "del", name], check=False)


def create_underlay(prefix):
    name = underlay_name(prefix)
    add_netns(name)
    ip_batch(name, ["link add br0 type bridge", "link set br0 up"])


def create_node(prefix, k, nodes):
    """Node netns K, plugged into the underlay bridge, routing to every other node's pods."""
    netns, under = node_netns(prefix, k), underlay_name(prefix)
    add_netns(netns)
    ip_batch(under, ["link add n%d type veth peer name eth0 netns %s" % (k, netns),
                     "link set n%d master br0" % k, "link set n%d up" % k])
    cmds = ["addr add %s/24 dev eth0" % node_ip(k), "link set eth0 up",
            "addr add %s/32 dev lo" % pod_gateway(k)]
    cmds += ["route add %s via %s" % (pod_cidr(m), node_ip(m))
             for m in range(1, nodes + 1) if m != k]
    ip_batch(netns, cmds)
    sysctl(netns, {"net.ipv4.ip_forward": 1, "net.ipv4.conf.all.rp_filter": 0,
                   "net.ipv4.conf.default.rp_filter": 0})


def create_pod(prefix, k, netns, ip, veth):
    """Pod netns with eth0 = ip/32, a veth `veth` to node K and a default route via the node."""
    node = node_netns(prefix, k)
    add_netns(netns)
    ip_batch(node, ["link add %s type veth peer name eth0 netns %s" % (veth, netns),
                    "link set %s up" % veth,
                    "route add %s/32 dev %s" % (ip, veth)])
    gw = pod_gateway(k)
    ip_batch(netns, ["addr add %s/32 dev eth0" % ip, "link set eth0 up",
                     "route add %s/32 dev eth0 scope link" % gw,
                     "route add default via %s dev eth0 src %s" % (gw, ip)])


def write_etc_netns(netns, hosts, resolv):
    """The hosts and resolv.conf that `ip netns exec <netns>` bind-mounts over /etc's.

    Files are rewritten in place so processes that already run in the pod see new entries.
    """
    d = os.path.join(ETC_NETNS, netns)
    os.makedirs(d, exist_ok=True)
    write_in_place(os.path.join(d, "hosts"), hosts)
    write_in_place(os.path.join(d, "resolv.conf"), resolv)


def remove_etc_netns(netns):
    d = os.path.join(ETC_NETNS, netns)
    for f in ("hosts", "resolv.conf"):
        try:
            os.unlink(os.path.join(d, f))
        except FileNotFoundError:
            pass
    try:
        os.rmdir(d)
    except (FileNotFoundError, OSError):
        pass


def listening_tcp_ports(netns):
    """TCP ports with a listening socket in netns (from `ss -ltnH`)."""
    res = run(["ip", "netns", "exec", netns, "ss", "-ltnH"], check=False)
    ports = set()
    for line in res.stdout.splitlines():
        cols = line.split()
        if len(cols) >= 4 and ":" in cols[3]:
            try:
                ports.add(int(cols[3].rsplit(":", 1)[1]))
            except ValueError:
                pass
    return ports


_libc = None


def netns_socket(netns, family=socket.AF_INET, kind=socket.SOCK_STREAM):
    """A socket created inside netns (sockets keep the namespace they were made in).

    setns() only affects the calling thread, so a short-lived thread enters the namespace,
    makes the socket and exits; the lab's own threads never change namespace.
    """
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    out = {}

    def enter_and_create():
        try:
            fd = os.open(os.path.join(NETNS_DIR, netns), os.O_RDONLY)
        except OSError as e:
            out["error"] = e
            return
        try:
            if _libc.setns(fd, CLONE_NEWNET) != 0:
                err = ctypes.get_errno()
                out["error"] = OSError(err, "setns(%s): %s" % (netns, os.strerror(err)))
                return
            out["sock"] = socket.socket(family, kind)
        finally:
            os.close(fd)

    t = threading.Thread(target=enter_and_create)
    t.start()
    t.join()
    if "error" in out:
        raise out["error"]
    return out["sock"]


def http_get(netns, host, port, path, timeout=2.0, limit=64 << 20):
    """(status, body bytes) of GET http://host:port/path made from inside netns (HTTP/1.0, the
    body read to the end), or (error string, None)."""
    try:
        s = netns_socket(netns)
    except OSError as e:
        return str(e), None
    data = bytearray()
    try:
        s.settimeout(timeout)
        s.connect((host, port))
        s.sendall(("GET %s HTTP/1.0\r\nHost: %s:%d\r\n\r\n" % (path, host, port)).encode())
        while len(data) < limit:
            b = s.recv(65536)
            if not b:
                break
            data += b
    except OSError as e:
        if not data:  # a server that keeps the connection open: what arrived still counts
            return e.strerror or str(e), None
    finally:
        s.close()
    head, _, body = bytes(data).partition(b"\r\n\r\n")
    m = re.match(rb"HTTP/\d(?:\.\d)? (\d{3})", head)
    return (int(m.group(1)), body) if m else ("not an HTTP answer: %r" % head[:40], None)


def http_status(netns, host, port, path, timeout=1.0):
    """Status code of GET http://host:port/path made from inside netns, or an error string."""
    return http_get(netns, host, port, path, timeout=timeout, limit=256)[0]
