"""Running a test's cases with the harness's convergence rules.

A request case passes once it has passed REQUIRED_PASSES times in a row, and fails when that has
not happened within CONSISTENCY_TIMEOUT seconds of its first request (the upstream harness waits
100 ms after a failed attempt). A weight case is one run of N requests on one connection; it
passes on the first run whose split is within tolerance, and fails after WEIGHT_ATTEMPTS runs
(or WEIGHT_TIMEOUT seconds), as the upstream weight tests do. Cases of one test run in parallel
(the upstream subtests are parallel too).

The request sender is injected (`send(case) -> (exit status, stdout, stderr)`), and so are the
clock and sleep, so the rules can be tested without a lab (--self-test).
"""

import threading
import time
from concurrent.futures import ThreadPoolExecutor

from . import echo

REQUIRED_PASSES = 3
CONSISTENCY_TIMEOUT = 30.0
RETRY_PAUSE = 0.1
WEIGHT_ATTEMPTS = 10
WEIGHT_TIMEOUT = 180.0
MAX_PARALLEL = 8


class CaseResult:
    def __init__(self, case):
        self.case = case
        self.passed = False
        self.attempts = 0
        self.passes = 0                 # attempts that passed, in total
        self.best_streak = 0
        self.diffs = []                 # the last failing attempt's differences
        self.last_output = ""           # the last failing attempt's raw client output
        self.note = ""                  # weight cases: the split of the last run
        self.seconds = 0.0

    def detail(self):
        """One line for the table/report; empty when passed."""
        if self.passed:
            return ""
        c = self.case
        how = "%d attempt(s) in %.1fs" % (self.attempts, self.seconds)
        if self.passes:
            how += ", %d passed (best streak %d of %d)" % (self.passes, self.best_streak,
                                                           REQUIRED_PASSES)
        tag = " [extra]" if c.extra else ""
        return "%s%s: %s (%s)" % (c.name, tag, "; ".join(self.diffs) or "failed", how)


class Clock:
    now = staticmethod(time.monotonic)
    sleep = staticmethod(time.sleep)


def evaluate(case, rc, out, err, note=None):
    """Differences for one attempt of case (empty list = pass). For a weight case the observed
    split is appended to note (a list) when given."""
    responses = echo.parse(out)
    if rc in (2, 125, 127) or (not responses and rc != 0):
        return ["client failed (exit %d): %s" % (rc, _oneline(err or out))]
    if case.weight:
        if len(responses) != case.count:
            got = len(responses)
            diffs = ["%d of %d responses in the client output (exit %d)" % (got, case.count, rc)]
            if responses and responses[-1].status is None:
                diffs.append("last: %s" % responses[-1].describe())
            return diffs
        diffs, counts = echo.distribution(responses, case.weights, case.tolerance)
        if note is not None:
            note.append(", ".join("%s %d/%d" % (k, v, len(responses))
                                  for k, v in sorted(counts.items())))
        return diffs
    return echo.compare(case.expect, responses[0] if responses else None)


def run_case(case, send, clock=Clock, timeout=CONSISTENCY_TIMEOUT, stop=None):
    res = CaseResult(case)
    start = clock.now()
    streak = 0
    limit_attempts = WEIGHT_ATTEMPTS if case.weight else None
    limit_time = WEIGHT_TIMEOUT if case.weight else timeout
    while True:
        if stop is not None and stop.is_set():
            res.diffs = res.diffs or ["interrupted"]
            break
        rc, out, err = send(case)
        res.attempts += 1
        note = []
        diffs = evaluate(case, rc, out, err, note)
        res.note = note[0] if note else res.note
        if not diffs:
            res.passes += 1
            streak += 1
            res.best_streak = max(res.best_streak, streak)
            if case.weight or streak >= REQUIRED_PASSES:
                res.passed = True
                break
        else:
            streak = 0
            res.diffs, res.last_output = diffs, out + (("\n[stderr] " + err) if err else "")
        elapsed = clock.now() - start
        if elapsed >= limit_time or (limit_attempts and res.attempts >= limit_attempts):
            if not res.diffs:
                res.diffs = ["did not pass %d times in a row" % REQUIRED_PASSES]
            break
        if diffs:
            clock.sleep(RETRY_PAUSE)
    res.seconds = clock.now() - start
    return res


class TestResult:
    def __init__(self, test):
        self.test = test
        self.result = "skipped"         # "passed", "failed", "skipped"
        self.seconds = 0.0
        self.cases = []                 # [CaseResult]
        self.error = None               # a failure outside the cases (apply, delete, lab)

    @property
    def failed_cases(self):
        return [c for c in self.cases if not c.passed]

    def details(self):
        out = []
        if self.error:
            out.append(self.error)
        out += [c.detail() for c in self.failed_cases]
        return out


def run_cases(cases, send, clock=Clock, timeout=CONSISTENCY_TIMEOUT, parallel=True):
    stop = threading.Event()
    if not parallel or len(cases) == 1:
        return [run_case(c, send, clock, timeout, stop) for c in cases]
    with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL, len(cases))) as pool:
        futures = [pool.submit(run_case, c, send, clock, timeout, stop) for c in cases]
        try:
            return [f.result() for f in futures]
        except BaseException:
            stop.set()
            raise


def _oneline(text, limit=300):
    s = " | ".join(line.strip() for line in (text or "").strip().splitlines() if line.strip())
    return (s[:limit] + "…") if len(s) > limit else (s or "(no output)")
