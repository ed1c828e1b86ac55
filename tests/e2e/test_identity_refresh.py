"""Identity (DESIGN §7, issue 3 item 5): workload certificates are refreshed at half-life
without dropping connections. The ztunnels run with --cert-lifetime 1m (the shortest allowed),
so the certificates turn over after 30 s: a connection opened before the refresh keeps
echoing through it, the certificate serial in /config_dump changes, and new connections after
the refresh work (with the new certificate)."""
import json

from conftest import DEMO, Lines, echo_once, make_lab, wait_for
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
