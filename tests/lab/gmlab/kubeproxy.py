"""kube-proxy's job in the lab: Service VIP -> endpoint DNAT in each node's netns (nftables).

Traffic from pods is routed through their node, where a `nat prerouting` rule picks a random
ready endpoint (`numgen random`) for VIP:port and rewrites the destination to podIP:targetPort.
Hairpin connections (a pod reaching itself through a VIP) are SNATed to the node's pod
gateway address, or the pod would drop its own source address. VIP ports without endpoints are
answered with a TCP reset (ICMP for UDP) instead of timing out.

The lab owns one table, `ip gmlab`, in every node netns and replaces it atomically.
"""

import hashlib

from .topology import pod_gateway
from .util import run

HAIRPIN_MARK = "0x4000"


class PortRule:
    """One Service port: VIP:port/protocol and its endpoints [(podIP, targetPort)]."""

    def __init__(self, comment, vip, port, protocol, endpoints):
        self.comment = comment
        self.vip = vip
        self.port = port
        self.protocol = protocol.lower()
        self.endpoints = endpoints


def render(node_k, rules):
    """The nft script for node K's netns."""
    chains, dispatch, rejects = [], [], []
    for i, r in enumerate(sorted(rules, key=lambda r: (r.vip, r.protocol, r.port))):
        match = "ip daddr %s %s dport %d" % (r.vip, r.protocol, r.port)
        if not r.endpoints:
            reject = "reject with tcp reset" if r.protocol == "tcp" else "reject"
            rejects.append("    %s %s comment \"%s\"" % (match, reject, r.comment))
            continue
        svc = "svc_%d" % i
        dispatch.append("    %s jump %s comment \"%s\"" % (match, svc, r.comment))
        eps = []
        for j, (ip, port) in enumerate(sorted(r.endpoints)):
            ep = "ep_%d_%d" % (i, j)
            eps.append(ep)
            chains.append("  chain %s {\n"
                          "    ip saddr %s meta mark set mark or %s\n"
                          "    meta l4proto %s dnat to %s:%d\n"
                          "  }" % (ep, ip, HAIRPIN_MARK, r.protocol, ip, port))
        if len(eps) == 1:
            body = "    jump %s" % eps[0]
        else:
            vmap = ", ".join("%d : jump %s" % (j, ep) for j, ep in enumerate(eps))
            body = "    numgen random mod %d vmap { %s }" % (len(eps), vmap)
        chains.append("  chain %s {\n%s\n  }" % (svc, body))
    return "\n".join([
        "table ip gmlab",
        "delete table ip gmlab",
        "table ip gmlab {",
        *chains,
        "  chain services {",
        *dispatch,
        "  }",
        "  chain nat_pre {",
        "    type nat hook prerouting priority dstnat; policy accept;",
        "    jump services",
        "  }",
        "  chain nat_out {",
        "    type nat hook output priority -100; policy accept;",
        "    jump services",
        "  }",
        "  chain nat_post {",
        "    type nat hook postrouting priority srcnat; policy accept;",
        "    meta mark & %s == %s snat to %s" % (HAIRPIN_MARK, HAIRPIN_MARK, pod_gateway(node_k)),
        "  }",
        "  chain filter_fwd {",
        "    type filter hook forward priority filter; policy accept;",
        *rejects,
        "  }",
        "}",
    ]) + "\n"


def apply(netns, script):
    """Load the script into netns (one atomic nft transaction)."""
    run(["ip", "netns", "exec", netns, "nft", "-f", "-"], input=script)


def digest(script):
    return hashlib.sha256(script.encode()).hexdigest()[:16]
