"""A thin wrapper around `tests/lab/lab` for one named lab (GMLAB_NAME)."""

import json
import os
import shutil
import subprocess

LAB_ERROR = 125     # `lab exec`'s exit status for the lab's own errors


class LabFailed(Exception):
    """A lab command failed; str() has the command and the end of its stderr."""


class Lab:
    def __init__(self, lab_cmd, name, verbose=False):
        self.lab_cmd = lab_cmd
        self.env = dict(os.environ)
        self.env["GMLAB_NAME"] = name
        self.name = name
        self.verbose = verbose
        self._status = None

    def _run(self, args, timeout, check=True, stdin=None):
        argv = [self.lab_cmd] + list(args)
        if self.verbose:
            print("+ GMLAB_NAME=%s %s" % (self.name, " ".join(argv)), flush=True)
        try:
            p = subprocess.run(argv, env=self.env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, timeout=timeout, text=True,
                               errors="replace", input=stdin)
        except subprocess.TimeoutExpired as e:
            raise LabFailed("`lab %s` did not finish in %ds" % (" ".join(args), timeout)) from e
        if check and p.returncode != 0:
            raise LabFailed("`lab %s` exited %d: %s"
                            % (" ".join(args), p.returncode, _tail(p.stderr or p.stdout)))
        return p

    def up(self, files, ns_labels, timeout, nodes=None, api=False):
        args = ["up"] + (["--api"] if api else [])
        for kv in ns_labels:
            args += ["--ns-label", kv]
        if nodes:
            args += ["--nodes", str(nodes)]
        args += ["--timeout", str(timeout)] + list(files)
        self._run(args, timeout + 60)
        self._status = None

    def apply(self, path, timeout=60):
        self._run(["apply", "--timeout", str(timeout), path], timeout + 30)

    def delete(self, path):
        self._run(["delete", path], 60)

    def down(self):
        return self._run(["down"], 120, check=False)

    def status(self, refresh=False):
        if self._status is None or refresh:
            p = self._run(["status", "--json"], 30)
            self._status = json.loads(p.stdout)
        return self._status

    def pod_ip(self, namespace, labels):
        """IP of the first ready pod (by name) of namespace matching labels."""
        pods = sorted((p for p in self.status()["pods"]
                       if p["namespace"] == namespace and p.get("ready")
                       and all(p["labels"].get(k) == v for k, v in labels.items())),
                      key=lambda p: p["name"])
        if not pods:
            raise LabFailed("no ready pod in %s matches %s" % (namespace, labels))
        return pods[0]["ip"]

    def exec(self, target, argv, timeout):
        """Run argv in the netns of the pod target; returns (exit status, stdout, stderr)."""
        try:
            p = self._run(["exec", target, "--"] + list(argv), timeout, check=False)
        except LabFailed as e:
            return LAB_ERROR, "", str(e)
        return p.returncode, p.stdout, p.stderr

    def save_logs(self, dest):
        """Copy the lab's logs directory (daemons and pods) to dest before `down` removes it."""
        try:
            run = self.status(refresh=True)["run"]
        except (LabFailed, ValueError, KeyError):
            run = "/run/gmlab-%s" % self.name
        src = os.path.join(run, "logs")
        if not os.path.isdir(src):
            return None
        shutil.rmtree(dest, ignore_errors=True)
        shutil.copytree(src, dest)
        return dest


def _tail(text, lines=12):
    text = (text or "").strip()
    return " | ".join(text.splitlines()[-lines:]) or "(no output)"
