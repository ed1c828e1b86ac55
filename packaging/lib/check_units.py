#!/usr/bin/python3
"""Policy checks of the systemd units and example env files (systemd-analyze checks syntax).

  check_units.py --ztunnel BIN [--waypoint BIN] [--settings-header H] SYSTEMD_DIR

The hardening and lifecycle settings the packaging promises (packaging/README.md), the
capability sets, TimeoutStopSec above the daemons' default drain deadline, every GM_*
variable named in the units and env files being a setting the daemon knows (`--help`), and
sockets named in the env files (GM_CNI_SOCKET) lying in the unit's RuntimeDirectory, the only
place under ProtectSystem=strict where the daemon can create them.
Prints one line per problem; exit 1 if there is any.
"""
import argparse
import os
import re
import subprocess
import sys

COMMON = {
    "Restart": "on-failure",
    "KillSignal": "SIGTERM",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "PrivateDevices": "yes",
    "NoNewPrivileges": "yes",
    "MemoryDenyWriteExecute": "yes",
    "LockPersonality": "yes",
    "RestrictRealtime": "yes",
    "RestrictSUIDSGID": "yes",
    "ProtectKernelTunables": "yes",
    "ProtectKernelModules": "yes",
    "ProtectControlGroups": "yes",
    "SystemCallArchitectures": "native",
    "ConfigurationDirectory": "gammamesh",
}
UNITS = {
    "gammamesh-ztunnel.service": {
        "daemon": "ztunnel",
        "exec": "/usr/sbin/gammamesh-ztunnel",
        "caps": {"CAP_NET_ADMIN", "CAP_SYS_ADMIN", "CAP_NET_RAW"},
        "families": {"AF_UNIX", "AF_INET", "AF_INET6", "AF_NETLINK"},
        "namespaces": "net",
        "envfiles": ["-/etc/gammamesh/ztunnel.env"],
        "envexamples": ["ztunnel.env"],
        # settings whose example value is a socket the daemon creates: it must be shown
        "sockets": {"GM_CNI_SOCKET"},
    },
    "gammamesh-waypoint@.service": {
        "daemon": "waypoint",
        "exec": "/usr/sbin/gammamesh-waypoint",
        "caps": set(),
        "families": {"AF_UNIX", "AF_INET", "AF_INET6"},
        "namespaces": "yes",
        "envfiles": ["-/etc/gammamesh/waypoint.env", "-/etc/gammamesh/waypoint-%i.env"],
        "envexamples": ["waypoint.env", "waypoint-NAMESPACE.env"],
        "extra": {"DynamicUser": "yes", "PrivateUsers": "yes"},
    },
}


def parse_unit(path):
    """{section: {key: [values in order]}} (no continuation lines are used in ours)."""
    out, sec = {}, None
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line or line[0] in "#;":
                continue
            if line.startswith("["):
                sec = out.setdefault(line.strip("[]"), {})
                continue
            k, _, v = line.partition("=")
            sec.setdefault(k.strip(), []).append(v.strip())
    return out


def seconds(v):
    m = re.match(r"^([0-9]+)\s*(ms|s|min|m|h)?$", v)
    if not m:
        return None
    n, unit = int(m.group(1)), m.group(2) or "s"
    return n / 1000 if unit == "ms" else n * {"s": 1, "min": 60, "m": 60, "h": 3600}[unit]


def help_env(binary):
    if not binary or not os.access(binary, os.X_OK):
        return set(), ""
    try:
        out = subprocess.run([binary, "--help"], capture_output=True, text=True,
                             timeout=20).stdout
    except OSError:
        return set(), ""
    return set(re.findall(r"\benv (GM_[A-Z0-9_]+)", out)) | ({"GM_SETTINGS"} if "GM_" in out
                                                              else set()), out


def main(argv):
    ap = argparse.ArgumentParser()
    ap.add_argument("--ztunnel", required=True)
    ap.add_argument("--waypoint")
    ap.add_argument("--settings-header")
    ap.add_argument("dir")
    a = ap.parse_args(argv)
    problems, notes = [], []
    envs = {"ztunnel": help_env(a.ztunnel), "waypoint": help_env(a.waypoint)}
    common = set()
    if a.settings_header and os.path.exists(a.settings_header):
        text = open(a.settings_header, encoding="utf-8").read()
        m = re.search(r"#define GM_SETTINGS_COMMON\(.*?\n((?:.*\\\n)+.*)", text)
        if m:
            common = set(re.findall(r'"(GM_[A-Z0-9_]+)"', m.group(1))) | {"GM_SETTINGS"}
    if not envs["ztunnel"][0]:
        problems.append("cannot read the settings from `%s --help`" % a.ztunnel)
    m = re.search(r"--drain-deadline.*?default ([0-9a-z]+)", envs["ztunnel"][1], re.S)
    drain = seconds(m.group(1)) if m else None
    if drain is None:
        problems.append("cannot read the default drain deadline from ztunnel --help")

    def check_names(where, daemon, names):
        known = envs[daemon][0]
        for n in sorted(names):
            if known:
                if n not in known:
                    problems.append("%s: %s is not a %s setting (see --help)" % (where, n, daemon))
            elif n not in common:
                notes.append("%s: %s: not verifiable (`%s --help` lists no GM_* settings)"
                             % (where, n, daemon))

    def check_socket(ex, i, unit, rundir, setting, value):
        where = os.path.dirname(value)
        if not rundir or where not in ("/run/" + rundir, "/var/run/" + rundir):
            problems.append("%s:%d: %s=%s: %s cannot create it outside its RuntimeDirectory "
                            "(%s) under ProtectSystem=strict" % (ex, i, setting, value, unit,
                                                                 rundir))

    for name, want in UNITS.items():
        path = os.path.join(a.dir, name)
        try:
            u = parse_unit(path)
        except OSError as e:
            problems.append("%s: %s" % (name, e))
            continue
        svc = u.get("Service", {})

        def one(k):
            v = svc.get(k)
            return v[-1] if v else None

        for k, v in list(COMMON.items()) + list(want.get("extra", {}).items()):
            if one(k) != v:
                problems.append("%s: %s=%s, expected %s" % (name, k, one(k), v))
        if one("ExecStart") != want["exec"]:
            problems.append("%s: ExecStart=%s, expected %s" % (name, one("ExecStart"),
                                                                want["exec"]))
        if not (one("ExecReload") or "").endswith("kill -HUP $MAINPID"):
            problems.append("%s: ExecReload must send SIGHUP to $MAINPID" % name)
        caps = set((one("CapabilityBoundingSet") or "").split())
        if caps != want["caps"]:
            problems.append("%s: CapabilityBoundingSet %s, expected %s"
                            % (name, sorted(caps), sorted(want["caps"])))
        amb = set((one("AmbientCapabilities") or "").split())
        if not amb <= want["caps"]:
            problems.append("%s: AmbientCapabilities beyond the bounding set" % name)
        fams = set((one("RestrictAddressFamilies") or "").split())
        if fams != want["families"]:
            problems.append("%s: RestrictAddressFamilies %s, expected %s"
                            % (name, sorted(fams), sorted(want["families"])))
        if one("RestrictNamespaces") != want["namespaces"]:
            problems.append("%s: RestrictNamespaces=%s, expected %s"
                            % (name, one("RestrictNamespaces"), want["namespaces"]))
        if "@system-service" not in (svc.get("SystemCallFilter") or []):
            problems.append("%s: SystemCallFilter=@system-service missing" % name)
        if svc.get("EnvironmentFile") != want["envfiles"]:
            problems.append("%s: EnvironmentFile %s, expected %s"
                            % (name, svc.get("EnvironmentFile"), want["envfiles"]))
        if not svc.get("StateDirectory"):
            problems.append("%s: no StateDirectory (the only writable place under "
                            "ProtectSystem=strict)" % name)
        stop = seconds(one("TimeoutStopSec") or "")
        if stop is None or drain is None or stop <= drain + 5:
            problems.append("%s: TimeoutStopSec=%s must exceed the default drain deadline "
                            "(%ss) with a margin" % (name, one("TimeoutStopSec"), drain))
        if "WantedBy" not in u.get("Install", {}):
            problems.append("%s: no [Install] WantedBy=" % name)
        names = set()
        for e in svc.get("Environment") or []:
            names |= set(re.findall(r"(?:^|\s)(GM_[A-Z0-9_]+)=", e))
        check_names(name, want["daemon"], names)
        for ex in want["envexamples"]:
            p = os.path.join(a.dir, ex)
            try:
                lines = open(p, encoding="utf-8").read().split("\n")
            except OSError as e:
                problems.append("%s: %s" % (ex, e))
                continue
            names = set()
            for i, line in enumerate(lines, 1):
                m = re.match(r"^#?(GM_[A-Z0-9_]+)=(.*)$", line)
                if m and m.group(1) in want.get("sockets", ()):
                    check_socket(ex, i, name, one("RuntimeDirectory"), m.group(1), m.group(2))
                if m:
                    names.add(m.group(1))
                    if line[0] != "#" and (m.group(2).startswith(("'", '"')) or "$" in
                                           m.group(2)):
                        problems.append("%s:%d: quotes or $ in an EnvironmentFile value are "
                                        "taken literally or expanded by systemd" % (ex, i))
                elif line and not line.startswith("#"):
                    problems.append("%s:%d: not a GM_NAME=value line" % (ex, i))
            for s in sorted(set(want.get("sockets", ())) - names):
                problems.append("%s: no %s line (show where the socket goes)" % (ex, s))
            check_names(ex, want["daemon"], names)
    for n in sorted(set(notes)):
        print("note: " + n)
    for p in problems:
        print("problem: " + p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
