"""Small helpers shared by the lab's modules: errors, messages, commands, files, time."""

import datetime
import os
import subprocess
import sys
import tempfile


class LabError(Exception):
    """An error the user should see as one clear message (no traceback)."""


VERBOSE = os.environ.get("GMLAB_VERBOSE", "") not in ("", "0")


def info(msg):
    """Progress message on stderr (stdout is kept for command output such as `status`)."""
    print("lab: " + msg, file=sys.stderr, flush=True)


def warn(msg):
    print("lab: warning: " + msg, file=sys.stderr, flush=True)


def debug(msg):
    if VERBOSE:
        print("lab: debug: " + msg, file=sys.stderr, flush=True)


def run(argv, input=None, check=True):
    """Run a command, capturing its output; raise LabError when it fails and check is set."""
    debug("run: " + " ".join(argv))
    try:
        res = subprocess.run(argv, input=input, capture_output=True, text=True)
    except FileNotFoundError:
        raise LabError("command not found: %s" % argv[0]) from None
    if check and res.returncode != 0:
        out = (res.stderr or res.stdout).strip()
        raise LabError("command failed (exit %d): %s\n%s" % (res.returncode, " ".join(argv), out))
    return res


def now_rfc3339():
    """Current UTC time as RFC 3339 with second precision, like Kubernetes timestamps."""
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def write_atomic(path, data, mode=0o644):
    """Write data to path through a temporary file in the same directory and a rename."""
    d = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=d)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(data)
        os.chmod(tmp, mode)
        os.rename(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_in_place(path, data):
    """Rewrite a file keeping its inode (bind mounts of it see the change), if it changed."""
    try:
        with open(path) as f:
            if f.read() == data:
                return False
    except FileNotFoundError:
        pass
    with open(path, "a+") as f:
        f.seek(0)
        f.truncate()
        f.write(data)
    return True


def read_text(path, default=None):
    try:
        with open(path) as f:
            return f.read()
    except FileNotFoundError:
        return default


def tail(path, lines=20):
    """The last lines of a file (for error messages), or a note that it is empty/missing."""
    text = read_text(path)
    if text is None:
        return "(no log at %s)" % path
    rows = text.rstrip("\n").split("\n")[-lines:]
    if rows == [""]:
        return "(log %s is empty)" % path
    return "\n".join("    " + r for r in rows)


def remove_file(path):
    try:
        os.unlink(path)
        return True
    except FileNotFoundError:
        return False
