"""Command line of tests/conformance/run."""

import argparse
import os
import re
import signal
import subprocess
import sys
import time

from . import cases, report, runner
from .lab import Lab, LabFailed

HERE = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))      # tests/conformance
REPO = os.path.dirname(os.path.dirname(HERE))
WAYPOINT_MANIFEST = os.path.join(HERE, "waypoint.yaml")
BASE_MANIFEST = "manifests.yaml"
NS_LABELS = ["gammamesh.io/dataplane-mode=ambient", "gammamesh.io/use-waypoint=mesh-waypoint"]
DEFAULT_URL = "https://github.com/gammamesh/gammamesh"
DEFAULT_CONTACT = "@gammamesh/maintainers"


def default_manifests():
    """<repo>/../shared/…, else the shared checkout's usual place on these machines."""
    here = os.path.join(REPO, "..", "shared", "conformance", "gateway-api", "manifests")
    usual = "/work/shared/conformance/gateway-api/manifests"
    return here if os.path.isdir(here) or not os.path.isdir(usual) else usual


def parse_args(argv):
    p = argparse.ArgumentParser(
        prog="tests/conformance/run",
        description="Run the Gateway API mesh conformance tests (MESH-HTTP and the other mesh "
                    "HTTP tests) on a lab of network namespaces. Needs root, except for "
                    "--self-test and --list.")
    p.add_argument("--tests", metavar="NAME[,NAME]",
                   help="run only these tests (default: all %d)" % len(cases.TESTS))
    p.add_argument("--manifests", metavar="DIR",
                   default=os.environ.get("GM_CONFORMANCE_MANIFESTS") or default_manifests(),
                   help="directory of the upstream manifests (env GM_CONFORMANCE_MANIFESTS; "
                        "default <repo>/../shared/conformance/gateway-api/manifests)")
    p.add_argument("--report", metavar="PATH",
                   default=os.path.join(REPO, "build", "conformance-report.yaml"),
                   help="where to write the ConformanceReport (default build/"
                        "conformance-report.yaml)")
    p.add_argument("--log-dir", metavar="DIR", default=os.path.join(REPO, "build", "conformance"),
                   help="failing cases' client output and a copy of the lab's logs (default "
                        "build/conformance)")
    p.add_argument("--keep", action="store_true", help="leave the lab up at the end")
    p.add_argument("--lab-name", default="conf", help="GMLAB_NAME of the lab (default conf)")
    p.add_argument("--nodes", type=int, help="lab nodes (default: the lab's default)")
    p.add_argument("--up-timeout", type=int, default=180, metavar="S",
                   help="seconds for `lab up` to get every pod ready (default 180)")
    p.add_argument("--timeout", type=float, default=runner.CONSISTENCY_TIMEOUT, metavar="S",
                   help="seconds for each case to pass %d times in a row (default %g)"
                        % (runner.REQUIRED_PASSES, runner.CONSISTENCY_TIMEOUT))
    p.add_argument("--no-waypoint", action="store_true",
                   help="development aid: no waypoint Gateway and no use-waypoint label "
                        "(L4 only; route tests then fail by design)")
    p.add_argument("--api", action="store_true",
                   help="the daemons read the lab's Kubernetes API server, as in a cluster "
                        "(`lab up --api`), instead of its config directory")
    p.add_argument("--serial", action="store_true", help="run a test's cases one at a time")
    p.add_argument("--list", action="store_true", help="list the tests and exit")
    p.add_argument("--self-test", action="store_true",
                   help="test the comparison rules, the case definitions and the report "
                        "writer without a lab, and exit")
    p.add_argument("-v", "--verbose", action="store_true", help="print every lab command")
    return p.parse_args(argv)


def select(names):
    if not names:
        return list(cases.TESTS)
    want = [n.strip() for n in names.split(",") if n.strip()]
    unknown = [n for n in want if n not in cases.BY_NAME]
    if unknown:
        raise SystemExit("run: unknown test(s): %s (see --list)" % ", ".join(unknown))
    return [t for t in cases.TESTS if t.name in want]


def implementation():
    version = "0.0.0"
    try:
        with open(os.path.join(REPO, "meson.build")) as f:
            m = re.search(r"version\s*:\s*'([^']+)'", f.read())
            version = m.group(1) if m else version
    except OSError:
        pass
    try:
        env = dict(os.environ, GIT_OPTIONAL_LOCKS="0")
        sha = subprocess.run(["git", "-C", REPO, "rev-parse", "--short=12", "HEAD"],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                             env=env, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        sha = ""
    return {
        "organization": "gammamesh",
        "project": "gammamesh",
        "url": os.environ.get("GM_CONFORMANCE_URL", DEFAULT_URL),
        "version": "v%s%s" % (version, "-g" + sha if sha else ""),
        "contact": [os.environ.get("GM_CONFORMANCE_CONTACT", DEFAULT_CONTACT)],
    }


class Session:
    """One run: the lab, the tests, the results."""

    def __init__(self, args, tests):
        self.args, self.tests = args, tests
        self.manifests = os.path.realpath(args.manifests)
        self.lab = Lab(os.path.join(REPO, "tests", "lab", "lab"), args.lab_name, args.verbose)
        self.results = {t.name: runner.TestResult(t) for t in tests}
        self.error = None       # why the run stopped early (lab up failed, interrupted)
        self.resolved = {}      # id(case) -> the pod IP a PodIP host resolved to

    def check_manifests(self):
        need = [BASE_MANIFEST] + sorted({t.manifest for t in self.tests if t.manifest})
        missing = [n for n in need if not os.path.isfile(os.path.join(self.manifests, n))]
        if missing:
            raise SystemExit("run: %s missing in %s (set --manifests or GM_CONFORMANCE_MANIFESTS)"
                             % (", ".join(missing), self.manifests))

    def bring_up(self):
        self.lab.down()         # a lab of the same name left by a crashed run
        files = [os.path.join(self.manifests, BASE_MANIFEST)]
        labels = NS_LABELS[:1]
        if not self.args.no_waypoint:
            files.append(WAYPOINT_MANIFEST)
            labels = NS_LABELS
        say("lab up (%s): %s" % (self.args.lab_name, " ".join(os.path.basename(f)
                                                             for f in files)))
        t0 = time.monotonic()
        self.lab.up(files, labels, self.args.up_timeout, self.args.nodes, self.args.api)
        say("lab is up in %.1fs" % (time.monotonic() - t0))

    def send(self, case):
        host = case.host
        if isinstance(host, cases.PodIP):
            try:
                host = self.lab.pod_ip(host.namespace, host.labels)
            except LabFailed as e:
                return 125, "", str(e)
            self.resolved[id(case)] = host
        timeout = 60 + case.count // 2 if case.weight else 30
        return self.lab.exec(cases.CLIENTS[case.client], case.argv(host), timeout)

    def run_test(self, test):
        tr = self.results[test.name]
        path = os.path.join(self.manifests, test.manifest) if test.manifest else None
        t0 = time.monotonic()
        try:
            if path:
                self.lab.apply(path)
            tr.cases = runner.run_cases(test.cases, self.send, timeout=self.args.timeout,
                                        parallel=not self.args.serial)
        except LabFailed as e:
            tr.error = "apply %s: %s" % (test.manifest, e)
        finally:
            if path:
                try:
                    self.lab.delete(path)
                except LabFailed as e:
                    tr.error = (tr.error + "; " if tr.error else "") + "delete: %s" % e
            tr.seconds = time.monotonic() - t0
        ok = tr.error is None and tr.cases and all(c.passed for c in tr.cases)
        tr.result = "passed" if ok else "failed"
        say("%-42s %s (%.1fs)" % (test.name, tr.result, tr.seconds))
        self.write_case_log(tr)

    def write_case_log(self, tr):
        os.makedirs(self.args.log_dir, exist_ok=True)
        path = os.path.join(self.args.log_dir, tr.test.name + ".log")
        with open(path, "w") as f:
            f.write("%s: %s in %.1fs\n" % (tr.test.name, tr.result, tr.seconds))
            if tr.error:
                f.write("error: %s\n" % tr.error)
            for c in tr.cases:
                host = self.resolved.get(id(c.case), c.case.host)
                f.write("\n== %s: %s, %d attempt(s), %d passed, %.1fs\n"
                        % (c.case.name, "passed" if c.passed else "FAILED", c.attempts,
                           c.passes, c.seconds))
                f.write("client %s: %s\n" % (cases.CLIENTS[c.case.client],
                                             " ".join(c.case.argv(str(host)))))
                if c.note:
                    f.write("split of the last run: %s\n" % c.note)
                if not c.passed:
                    f.write("differences: %s\n" % "; ".join(c.diffs))
                    f.write("last failing output:\n%s\n" % c.last_output.rstrip())

    def fail_rest(self, why):
        for tr in self.results.values():
            if tr.result == "skipped":
                tr.result, tr.error = "failed", why


def say(msg):
    print("conformance: %s" % msg, flush=True)


def _sigterm(signum, frame):
    raise KeyboardInterrupt("signal %d" % signum)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.self_test:
        from . import selftest
        return selftest.main(args)
    tests = select(args.tests)
    if args.list:
        for t in tests:
            print("%-42s %-8s %-40s %s" % (t.name, t.level or "other", t.manifest or "-",
                                           ",".join(t.features)))
        return 0
    if os.geteuid() != 0:
        print("run: must run as root (the lab creates network namespaces)", file=sys.stderr)
        return 2
    s = Session(args, tests)
    s.check_manifests()
    signal.signal(signal.SIGTERM, _sigterm)
    t_start = time.monotonic()
    try:
        try:
            s.bring_up()
        except LabFailed as e:
            s.error = "lab up failed: %s" % e
            s.fail_rest("not run: lab up failed")
        else:
            for t in tests:
                s.run_test(t)
    except KeyboardInterrupt:
        s.error = "interrupted"
        s.fail_rest("not run: interrupted")
        say("interrupted")
    finally:
        saved = s.lab.save_logs(os.path.join(args.log_dir, "lab-logs"))
        if saved:
            say("lab logs copied to %s" % saved)
        if args.keep:
            say("lab left up (--keep): GMLAB_NAME=%s tests/lab/lab status; ... lab down"
                % args.lab_name)
        else:
            p = s.lab.down()
            if p.returncode != 0:
                say("lab down failed: %s" % (p.stderr or p.stdout).strip())
    return finish(s, args, time.monotonic() - t_start)


def finish(s, args, seconds):
    rows = []
    for t in s.tests:
        tr = s.results[t.name]
        details = tr.details()
        rows.append((t.name, tr.result, tr.seconds, details[0] if details else ""))
    print()
    print(report.table(rows))
    failed = [s.results[t.name] for t in s.tests if s.results[t.name].result != "passed"]
    shown = [tr for tr in failed if tr.cases or not (tr.error or "").startswith("not run:")]
    if shown:
        print("\nFailures:")
        for tr in shown:
            print("- %s (%s):" % (tr.test.name, tr.test.manifest or "no manifest"))
            for d in tr.details():
                print("    %s" % d)
    if s.error:
        print("\nThe run stopped early: %s" % s.error)
    passed = len(s.tests) - len(failed)
    rep = report.build(s.results, implementation())
    os.makedirs(os.path.dirname(os.path.abspath(args.report)), exist_ok=True)
    with open(args.report, "w") as f:
        f.write(report.to_yaml(rep))
    prof = rep["profiles"][0]
    print("\n%d of %d tests passed in %.0fs. %s: %s\nreport %s, logs %s"
          % (passed, len(s.tests), seconds, prof["name"], prof["summary"], args.report,
             args.log_dir))
    return 0 if not failed else 1
