"""Identity (DESIGN §7, issue 3 item 5): workload certificates are refreshed at half-life
without dropping connections. The ztunnels run with --cert-lifetime 1m (the shortest allowed),
so the certificates turn over after 30 s: a connection opened before the refresh keeps
echoing through it, the certificate serial in /config_dump changes, and new connections after
the refresh work (with the new certificate). The CA itself rotates under the running daemons
when its files change, in the three steps of a root rotation."""
import hashlib
import json
import os
import ssl

from conftest import DEMO, REPO, Lines, echo_once, make_ca, make_lab, wait_for
from test_policy import LONG_LIVED

import pytest


@pytest.fixture(scope="module")
def lab(request, tmp_path_factory):
    lab = make_lab(request, tmp_path_factory, "idr")
    lab.up(DEMO, extra_env={"GMLAB_ZTUNNEL_ARGS": "--cert-lifetime 1m"})
    return lab


def certificates(lab, node):
    status, body = lab.http_get(node, 15000, "/config_dump")
    assert status == 200, "config_dump on %s: %s" % (node, status)
    return {c["identity"]: c for c in json.loads(body)["identity"]["certificates"]}


def test_refresh_at_half_life_keeps_connections(lab):
    client = lab.pod("demo", app="client")
    far = [p for p in lab.pods("demo", app="service-b") if p["node"] != client["node"]][0]
    assert echo_once(lab, client["netns"], far["ip"], 9090, "before-refresh")["ok"]
    ident = "spiffe://cluster.local/ns/demo/sa/client"
    before = certificates(lab, client["node"])[ident]
    assert before["state"] == "valid", before
    p = lab.spawn_piped(client["netns"], "/usr/bin/python3", "-c", LONG_LIVED, far["ip"],
                        "9090", "50")
    lines = Lines(p)
    try:
        first = lines.next_json(15)
        assert first and first["event"] == "open", first
        # Half of one minute, plus the refresh timer's granularity.
        wait_for(lambda: certificates(lab, client["node"])[ident]["serial"] != before["serial"],
                 60, interval=1, what="the client certificate to be re-issued at half-life")
        after = certificates(lab, client["node"])[ident]
        assert after["not_before"] >= before["not_before"], (before, after)
        # The connection opened before the refresh is still echoing afterwards.
        ev = lines.next_json(30)
        assert ev and ev["event"] == "survived", \
            "the connection opened before the refresh did not survive it: %s" % ev
    finally:
        lab.stop(p)
    assert echo_once(lab, client["netns"], far["ip"], 9090, "after-refresh")["ok"], \
        "a new connection after the refresh failed"


DEMO_WAYPOINT = REPO / "packaging" / "examples" / "demo-waypoint.yaml"


def through_waypoint(lab, n=4):
    """n requests from the client to service-b's VIP, which the demo waypoint serves."""
    res = lab.exec("demo/app=client", "echo-client", "http://service-b.demo/rotation", "--count",
                   str(n), timeout=60)
    return res.stdout.count("StatusCode=200") == n


def fingerprint(pem):
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem)).hexdigest()


def ca_state(lab, node):
    status, body = lab.http_get(node, 15000, "/config_dump")
    assert status == 200, "config_dump on %s: %s" % (node, status)
    ident = json.loads(body)["identity"]
    bundle = ident["bundle"]
    return {"signing": bundle["signing_ca"]["sha256"],
            "roots": sorted(r["sha256"] for r in bundle["roots"]),
            "reloads": ident["reloads"], "error": ident.get("reload_error")}


def write_atomic(path, text):
    tmp = "%s.tmp" % path
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def test_ca_rotation_under_running_daemons(lab, tmp_path):
    """A rotated CA Secret: (1) the new root is added to the bundle, (2) the new CA signs, (3)
    the old root goes. Every ztunnel follows each step within seconds, without a restart; new
    connections across nodes work at every step, with certificates of the new CA from step 2 on;
    a connection opened before step 1 keeps echoing through all three. The demo's waypoint
    follows too: requests through it work after every step."""
    client = lab.pod("demo", app="client")
    far = [p for p in lab.pods("demo", app="service-b") if p["node"] != client["node"]][0]
    nodes = sorted({client["node"], far["node"]})
    old_crt, old_key = lab.ca_cert.read_text(), lab.ca_key.read_text()
    crt, key = make_ca(tmp_path, "rotated-ca")
    new_crt, new_key = crt.read_text(), key.read_text()
    old_fp, new_fp = fingerprint(old_crt), fingerprint(new_crt)
    assert all(ca_state(lab, n)["signing"] == old_fp for n in nodes)
    assert echo_once(lab, client["netns"], far["ip"], 9090, "before-rotation")["ok"]
    lab.lab("apply", DEMO_WAYPOINT)
    wait_for(lambda: through_waypoint(lab), 30, interval=1, what="requests through the waypoint")
    waypoint = [p for p in lab.pods("demo") if p["name"].startswith("waypoint")][0]
    p = lab.spawn_piped(client["netns"], "/usr/bin/python3", "-c", LONG_LIVED, far["ip"],
                        "9090", "45")
    lines = Lines(p)

    def step(what, cert_text, key_text, signing, roots):
        write_atomic(lab.ca_key, key_text)
        write_atomic(lab.ca_cert, cert_text)
        for n in nodes:
            wait_for(lambda: (lambda st: st["signing"] == signing and st["roots"] == roots
                              and not st["error"])(ca_state(lab, n)), 30, interval=0.5,
                     what="ztunnel-%s to load the CA of step %s" % (n, what))
        assert echo_once(lab, client["netns"], far["ip"], 9090, "step-%s" % what)["ok"], \
            "a new connection after step %s failed" % what
        wait_for(lambda: lab.log("demo/" + waypoint["name"]).count("CA reloaded") >= reloads[0] + 1,
                 30, interval=0.5, what="the waypoint to load the CA of step %s" % what)
        reloads[0] += 1
        assert through_waypoint(lab), "requests through the waypoint failed after step %s" % what

    reloads = [0]

    try:
        first = lines.next_json(15)
        assert first and first["event"] == "open", first
        step("1 (trust the new root)", old_crt + new_crt, old_key, old_fp,
             sorted([old_fp, new_fp]))
        step("2 (the new CA signs)", new_crt + old_crt, new_key, new_fp,
             sorted([old_fp, new_fp]))
        # both ends of the connection just made hold leaves of the new CA: new handshakes
        ids = {client["node"]: "spiffe://cluster.local/ns/demo/sa/client",
               far["node"]: "spiffe://cluster.local/ns/demo/sa/service-b"}
        for n, ident in ids.items():
            cert = certificates(lab, n)[ident]
            assert "rotated-ca" in cert["issuer"], (n, cert)
        step("3 (the old root goes)", new_crt, new_key, new_fp, [new_fp])
        ev = lines.next_json(60)
        assert ev and ev["event"] == "survived", \
            "the connection opened before the rotation did not survive it: %s" % ev
    finally:
        lab.stop(p)
        write_atomic(lab.ca_key, old_key)
        write_atomic(lab.ca_cert, old_crt)
    assert all(ca_state(lab, n)["reloads"] >= 3 for n in nodes)
