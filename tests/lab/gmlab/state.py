"""Where the lab keeps things: the run directory, its JSON state file and its lock.

Environment:
  GMLAB_RUN     run directory (default /run/gmlab, or /run/gmlab-<name> with GMLAB_NAME)
  GMLAB_NAME    optional short name ([a-z0-9]{1,12}) so several labs can coexist: its network
                namespaces are then called gmlab-<name>_… instead of gmlab-…
  GM_BUILD_DIR  build directory with the daemons (default <repo>/build)
  GMLAB_ZTUNNEL, GMLAB_WAYPOINT, GMLAB_ECHO_SERVER  override one program's path
  GMLAB_ZTUNNEL_ARGS, GMLAB_WAYPOINT_ARGS  extra arguments (shell words) for the daemons
  GMLAB_CNI=1, GMLAB_CNI_PLUGIN  the CNI gate (gmlab/cni.py)
"""

import contextlib
import fcntl
import json
import os
import re
import shlex

from .util import LabError, info, read_text, write_atomic

LAB_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO_DIR = os.path.dirname(os.path.dirname(LAB_DIR))
STATE_VERSION = 1


def lab_name():
    """The optional lab name from GMLAB_NAME, validated."""
    name = os.environ.get("GMLAB_NAME", "")
    if name and not re.match(r"[a-z0-9]{1,12}$", name):
        raise LabError("GMLAB_NAME must be 1-12 characters [a-z0-9], got %r" % name)
    return name


def netns_prefix():
    """Prefix of every network namespace (and /etc/netns entry) of this lab."""
    name = lab_name()
    return "gmlab-%s_" % name if name else "gmlab-"


def owns_netns(prefix, netns):
    """True if netns belongs to the lab with this prefix.

    The default lab's names are gmlab-[a-z0-9-]+ (Kubernetes names cannot hold '_'), and a
    named lab's are gmlab-<name>_…, so neither lab mistakes the other's namespaces for its own.
    """
    if prefix == "gmlab-":
        return re.match(r"gmlab-[a-z0-9-]+$", netns) is not None
    return netns.startswith(prefix)


def run_dir():
    name = lab_name()
    default = "/run/gmlab-%s" % name if name else "/run/gmlab"
    return os.path.abspath(os.environ.get("GMLAB_RUN") or default)


def build_dir():
    return os.path.abspath(os.environ.get("GM_BUILD_DIR") or os.path.join(REPO_DIR, "build"))


def programs(build):
    """Paths of the programs the lab runs, with the environment overrides applied."""
    env = os.environ.get
    return {
        "ztunnel": os.path.abspath(env("GMLAB_ZTUNNEL") or os.path.join(build, "ztunnel/ztunnel")),
        "waypoint": os.path.abspath(
            env("GMLAB_WAYPOINT") or os.path.join(build, "waypoint/waypoint")),
        "echo-server": os.path.abspath(
            env("GMLAB_ECHO_SERVER") or os.path.join(build, "tests/echo/echo-server")),
        "echo-dir": os.path.join(build, "tests/echo"),
        "ztunnel-args": shlex.split(env("GMLAB_ZTUNNEL_ARGS", "")),
        "waypoint-args": shlex.split(env("GMLAB_WAYPOINT_ARGS", "")),
    }


class Paths:
    """The files and directories inside one run directory."""

    # Everything the lab creates directly under the run directory (removed by `down`).
    ENTRIES = ("state.json", "lock", "logs", "config", "ca", "pids", "api", "proc", "cni")

    def __init__(self, run):
        self.run = run
        self.state = os.path.join(run, "state.json")
        self.lock = os.path.join(run, "lock")
        self.logs = os.path.join(run, "logs")
        self.config = os.path.join(run, "config")
        self.ca = os.path.join(run, "ca")
        self.ca_cert = os.path.join(self.ca, "ca.crt")
        self.ca_key = os.path.join(self.ca, "ca.key")
        self.pids = os.path.join(run, "pids")
        self.api = os.path.join(run, "api")              # lab up --api: the API server's files
        self.api_objects = os.path.join(self.api, "objects.json")
        self.api_token = os.path.join(self.api, "token")
        self.api_ca = os.path.join(self.api, "api-ca.crt")
        self.proc = os.path.join(run, "proc")            # lab up --api: a /proc per node
        self.cni = os.path.join(run, "cni")              # GMLAB_CNI=1: ztunnels' CNI sockets

    def log(self, name):
        return os.path.join(self.logs, name + ".log")

    def pidfile(self, name):
        return os.path.join(self.pids, name + ".pid")

    def make_dirs(self):
        for d in (self.logs, self.config, self.pids):
            os.makedirs(d, exist_ok=True)
        os.makedirs(self.ca, mode=0o700, exist_ok=True)


@contextlib.contextmanager
def locked(paths):
    """Hold the run directory's lock so two mutating lab commands never interleave."""
    if not os.path.isdir(paths.run):
        raise LabError("no lab is up (no run directory %s); start one with `lab up`" % paths.run)
    fd = os.open(paths.lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            info("waiting for another lab command to finish…")
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def new_state(paths, prefix, nodes, build, created_run_dir):
    """The initial state of a lab that is being brought up."""
    return {
        "version": STATE_VERSION,
        "run": paths.run,
        "created_run_dir": created_run_dir,
        "prefix": prefix,
        "build": build,
        "programs": programs(build),
        "nodes": nodes,
        "ns_labels": {},
        "objects": {},        # "Kind/ns/name" -> object as applied (defaults filled in)
        "sources": {},        # "Kind/ns/name" -> "file:line" it came from
        "implicit_ns": [],    # namespaces created because an object used them
        "pods": {},           # "ns/name" -> pod record (see cluster.py)
        "vips": {},           # "ns/name" -> Service VIP (kept after delete: stable)
        "ip_next": {},        # node index -> next pod address octet to try
        "netns": [],          # every network namespace created, in creation order
        "etc_netns_created": False,
        "daemons": {},        # "ztunnel-nodeK" -> process record
        "nft": {},            # node index -> hash of the rules last loaded
        "api": False,         # daemons read a Kubernetes API server (lab up --api)
    }


def load(paths):
    """The state of the lab in paths.run; LabError if no lab is up there."""
    text = read_text(paths.state)
    if text is None:
        raise LabError("no lab is up (no %s); start one with `lab up`" % paths.state)
    st = json.loads(text)
    if st.get("version") != STATE_VERSION:
        raise LabError("%s has state version %r, expected %d; run `lab down`"
                       % (paths.state, st.get("version"), STATE_VERSION))
    return st


def save(paths, st):
    write_atomic(paths.state, json.dumps(st, indent=1, sort_keys=True) + "\n")
