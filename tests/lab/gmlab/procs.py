"""Starting and stopping the programs the lab runs.

A process is identified by its PID *and* its start time (field 22 of /proc/PID/stat), both
recorded in the state file and in a PID file the moment it starts, so the lab only ever signals
processes it started itself, even after a crash or PID reuse.
"""

import glob
import json
import os
import signal
import subprocess
import time

from .util import now_rfc3339, remove_file, write_atomic

# Popen objects of processes started by this invocation (to reap them and learn exit codes).
_children = {}


def _stat(pid):
    """(state, start time) of a process from /proc, or None if there is no such process."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            text = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = text[text.rindex(")") + 2:].split()
    return fields[0], int(fields[19])


def start(name, argv, netns, paths, env, pidname=None):
    """Run argv inside netns (`ip netns exec`), output appended to logs/<name>.log.

    The process gets its own session (it outlives the lab command) and no stdin. Returns the
    process record stored in the state.
    """
    log_path = paths.log(name)
    with open(log_path, "ab") as log:
        log.write(("--- %s lab: starting in %s: %s\n"
                   % (now_rfc3339(), netns, " ".join(argv))).encode())
        log.flush()
        p = subprocess.Popen(["ip", "netns", "exec", netns] + argv, stdin=subprocess.DEVNULL,
                             stdout=log, stderr=subprocess.STDOUT, env=env, cwd=paths.run,
                             start_new_session=True, close_fds=True)
    _children[p.pid] = p
    st = _stat(p.pid)
    rec = {"name": pidname or name, "pid": p.pid, "start": st[1] if st else None,
           "argv": argv, "netns": netns, "log": log_path}
    write_atomic(paths.pidfile(rec["name"]), json.dumps(rec) + "\n")
    return rec


def alive(rec):
    """True while the recorded process runs (same PID and start time, not a zombie)."""
    child = _children.get(rec["pid"])
    if child is not None:
        return child.poll() is None
    st = _stat(rec["pid"])
    return st is not None and st[0] != "Z" and st[1] == rec.get("start")


def exit_status(rec):
    """The exit status if this invocation started the process and it ended, else None."""
    child = _children.get(rec["pid"])
    return child.poll() if child is not None else None


def _signal(rec, sig):
    """Signal the process (and its process group, which it leads) if it is still ours."""
    if not alive(rec):
        return
    pid = rec["pid"]
    try:
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except ProcessLookupError:
        pass


def stop(recs, paths, grace=5.0):
    """Stop processes: SIGTERM, then SIGKILL after `grace` seconds; remove their PID files."""
    recs = list(recs)
    for rec in recs:
        _signal(rec, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while any(alive(r) for r in recs) and time.monotonic() < deadline:
        time.sleep(0.05)
    for rec in recs:
        _signal(rec, signal.SIGKILL)
    deadline = time.monotonic() + 2.0
    while any(alive(r) for r in recs) and time.monotonic() < deadline:
        time.sleep(0.05)
    for rec in recs:
        remove_file(paths.pidfile(rec["name"]))
    return [r for r in recs if alive(r)]


def read_pidfiles(paths):
    """Process records from the PID files (used by `down` after a crash)."""
    recs = []
    for f in sorted(glob.glob(os.path.join(paths.pids, "*.pid"))):
        try:
            with open(f) as fh:
                rec = json.load(fh)
            if isinstance(rec.get("pid"), int):
                recs.append(rec)
        except (OSError, ValueError):
            continue
    return recs
