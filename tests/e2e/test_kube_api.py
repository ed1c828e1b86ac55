"""The demo lab as in a cluster (`lab up --api`): both ztunnels list+watch the lab's Kubernetes
API server (config-source=kubernetes) instead of reading files, and find each pod's network
namespace under --proc-root by the pod's uid in its processes' cgroup (the pods carry no
gammamesh.io/netns annotation). Pods, scaling and policies all arrive through the API."""

import json
import time

import pytest

from conftest import (CLIENT_ID, DEMO, REPO, check_sandbox_recreation, echo_once, make_lab,
                      wait_for)

DEMO_WAYPOINT = REPO / "packaging" / "examples" / "demo-waypoint.yaml"

B_V1_PLUS = """
apiVersion: apps/v1
kind: Deployment
metadata:
  name: extra-b
  namespace: demo
spec:
  replicas: 2
  selector:
    matchLabels: {app: extra-b}
  template:
    metadata:
      labels: {app: extra-b}
    spec:
      serviceAccountName: extra
      containers:
      - name: echo
        image: registry.k8s.io/gateway-api/conformance/echo-advanced:v0.1.0
        args: ["--port=8080", "--tcp=9090"]
---
apiVersion: v1
kind: Service
metadata:
  name: extra-b
  namespace: demo
spec:
  selector: {app: extra-b}
  ports:
  - {name: tcp, port: 9090, targetPort: 9090}
"""

DENY_CLIENT = """
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: deny-client-to-extra
  namespace: demo
spec:
  selector:
    matchLabels: {app: extra-b}
  action: DENY
  rules:
  - from:
    - source:
        principals: ["cluster.local/ns/demo/sa/client"]
"""


@pytest.fixture(scope="module")
def lab(request, tmp_path_factory):
    lab = make_lab(request, tmp_path_factory, "api")
    # a long keepalive: no PING finds a dead tunnel before the sandbox test's streams do
    lab.up(DEMO, flags=("--api",), extra_env={"GMLAB_ZTUNNEL_ARGS": "--hbone-keepalive 60s"})
    return lab


def dump(lab, node):
    status, body = lab.http_get(node, 15000, "/config_dump")
    assert status == 200, body
    return json.loads(body)


def captured(lab, node):
    """{pod name: capture record} of a node's ztunnel."""
    return {p["pod"]: p for p in dump(lab, node)["pods"]}


def test_daemons_read_the_api_and_find_pods_without_annotation(lab):
    assert lab.daemon("kube-api")["alive"]
    served = json.loads((lab.run_dir / "api" / "objects.json").read_text())
    pods = [o for o in served if o["kind"] == "Pod"]
    assert len(pods) == 4 and not any("gammamesh.io/netns" in json.dumps(o) for o in pods)
    for node in ("node1", "node2"):
        d = dump(lab, node)
        assert d["config_source"] == "kubernetes" and "config_dir" not in d
        res = d["kubernetes"]["resources"]
        assert all(r["synced"] and r["served"] for r in res.values()), res
        mine = [p for p in lab.pods("demo") if p["node"] == node]
        caps = captured(lab, node)
        for p in mine:
            assert caps[p["name"]]["state"] == "captured", caps
            # found under --proc-root and held open: the path is ztunnel's own fd
            assert caps[p["name"]]["netns"].startswith("/proc/"), caps[p["name"]]
        log = lab.log("ztunnel-" + node)
        for p in mine:
            assert "pod network namespace found\" pod=demo/%s" % p["name"] in log, log[-3000:]


def test_traffic_through_the_api_configured_mesh_is_mtls(lab, client):
    res = lab.exec("demo/app=client", "echo-client", "http://service-b.demo/api", "--count", "6",
                   timeout=60, check=True)
    assert res.stdout.count("StatusCode=200") == 6, res.stdout
    logs = lab.log("ztunnel-node1") + lab.log("ztunnel-node2")
    inbound = [l for l in logs.splitlines() if "direction=inbound" in l
               and "src.identity=%s " % CLIENT_ID in l]
    assert inbound and all("mtls=true" in l for l in inbound), logs[-3000:]


def test_new_pods_arrive_through_the_watch_and_leave_with_it(lab, client):
    lab.apply(B_V1_PLUS)
    pods = lab.pods("demo", app="extra-b")
    assert len(pods) == 2 and {p["node"] for p in pods} == {"node1", "node2"}, pods
    for p in pods:
        wait_for(lambda: captured(lab, p["node"]).get(p["name"], {}).get("state") == "captured",
                 15, what="%s captured by ztunnel-%s" % (p["name"], p["node"]))
    r = echo_once(lab, client["netns"], "extra-b.demo", 9090, "through-the-api")
    assert r["ok"], r
    # a policy from the API acts too
    lab.apply(DENY_CLIENT)
    wait_for(lambda: not echo_once(lab, client["netns"], "extra-b.demo", 9090, "x")["ok"], 15,
             what="the DENY policy applies")
    lab.delete(DENY_CLIENT)
    wait_for(lambda: echo_once(lab, client["netns"], "extra-b.demo", 9090, "y")["ok"], 15,
             what="the DENY policy is gone")
    lab.delete(B_V1_PLUS)
    for p in pods:
        wait_for(lambda: p["name"] not in captured(lab, p["node"]), 15,
                 what="%s released by ztunnel-%s" % (p["name"], p["node"]))
        assert "pod released\" pod=demo/%s" % p["name"] in lab.log("ztunnel-" + p["node"])


def test_waypoint_from_the_api_routes_and_writes_route_status(lab, client):
    """The demo's L7 step through the API: the waypoint serves service-b, the route's 90/10
    split applies, and the waypoint writes the route's status (Accepted, ResolvedRefs) to the
    API server, once."""
    lab.lab("apply", DEMO_WAYPOINT)
    lab._status = None
    res = lab.exec("demo/app=client", "echo-client", "http://service-b.demo/split", "--count",
                   "20", timeout=60, check=True)
    assert res.stdout.count("StatusCode=200") == 20, res.stdout
    versions = [l for l in res.stdout.splitlines() if "ServiceVersion=" in l]
    assert versions and all("v1" in l or "v2" in l for l in versions), versions
    log = lambda: lab.log("kube-api")  # noqa: E731
    wait_for(lambda: "status httproutes demo/service-b:" in log(), 15,
             what="the waypoint writes the route's status")
    line = [l for l in log().splitlines() if "status httproutes demo/service-b:" in l][-1]
    assert "Accepted=True/Accepted/gen1" in line and "ResolvedRefs=True/ResolvedRefs/gen1" in \
        line, line
    time.sleep(2)  # its own write comes back as an event: no second write for the same status
    assert log().count("status httproutes demo/service-b:") == 1, log()[-2000:]
    lab.lab("delete", DEMO_WAYPOINT)


def test_a_recreated_sandbox_is_found_again_under_proc_root(lab, client):
    """The same as in test_tunnel, for a pod found under --proc-root: its old process is gone,
    the pod's new process lives in a new netns; ztunnel releases the netns it held open and
    captures the new one."""
    far = [p for p in lab.pods("demo", app="service-b") if p["node"] != client["node"]]
    check_sandbox_recreation(lab, client, far[0])
