"""`lab down` removes every namespace, process and file of a lab that carried traffic (and
is safe to run twice)."""

import os
from pathlib import Path

from conftest import DEMO, echo_once, make_lab, run


def netns_names(prefix):
    out = run(["ip", "netns", "list"], timeout=30).stdout
    return sorted(l.split()[0] for l in out.splitlines() if l.split() and
                  l.split()[0].startswith(prefix))


def start_time(pid):
    """Start time of a running process (None if it is gone or a zombie, i.e. has exited)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(") ", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None if fields[0] in ("Z", "X") else int(fields[19])


def test_down_removes_everything(request, tmp_path_factory):
    lab = make_lab(request, tmp_path_factory, "cln")
    lab.up(DEMO)
    st = lab.status(fresh=True)
    client = lab.pod("demo", app="client")
    b = lab.pods("demo", app="service-b")[0]
    assert echo_once(lab, client["netns"], b["ip"], 9090, "cleanup")["ok"]

    run_dir = Path(st["run"])
    procs = [(d["pid"], start_time(d["pid"])) for d in st["daemons"]]
    procs += [(p["pid"], start_time(p["pid"])) for pod in st["pods"] for p in pod["processes"]]
    assert procs and all(t is not None for _, t in procs), procs
    spaces = netns_names(lab.prefix)
    assert len(spaces) == 1 + 2 + len(st["pods"]), spaces
    assert run_dir.is_dir()

    res = lab.down()
    assert res.returncode == 0, res.stderr
    assert netns_names(lab.prefix) == [], "namespaces left: %s" % netns_names(lab.prefix)
    left = [pid for pid, t in procs if start_time(pid) == t]
    assert not left, "processes left running: %s" % left
    assert not run_dir.exists() or not any(run_dir.iterdir()), \
        "files left in %s: %s" % (run_dir, list(run_dir.iterdir()))
    etc = [n for n in (os.listdir("/etc/netns") if os.path.isdir("/etc/netns") else [])
           if n.startswith(lab.prefix)]
    assert not etc, "/etc/netns entries left: %s" % etc
    mine = [p for p in os.listdir("/proc") if p.isdigit() and start_time(int(p)) is not None
            and _cmdline(int(p)).find(str(run_dir).encode()) >= 0]
    assert not mine, "processes still mention %s: %s" % (run_dir, mine)

    again = lab.down()
    assert again.returncode == 0, "a second `lab down` failed: %s" % again.stderr


def _cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read()
    except OSError:
        return b""
