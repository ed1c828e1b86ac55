"""The results table and the ConformanceReport YAML.

The report follows the upstream ConformanceReport (conformance/apis/v1): implementation, date,
gatewayAPIVersion, gatewayAPIChannel, mode, and one entry in `profiles` per profile with
`core` and `extended` statuses (result success|partial|failure, statistics Passed/Failed/
Skipped, failedTests, skippedTests; extended also supportedFeatures/unsupportedFeatures) and a
summary. Tests that are outside MESH-HTTP (they need a feature the profile lacks) are listed
under `otherTests`, a gammamesh addition: the upstream type has no place for them.
"""

import datetime
import json
import re

from .cases import (OTHER_FEATURES, PROFILE, PROFILE_CORE_FEATURES, PROFILE_EXTENDED_FEATURES,
                    TESTS)

GATEWAY_API_VERSION = "v1.6.1"      # newest release at the manifests' commit (SOURCE.md)
GATEWAY_API_CHANNEL = "standard"


def status_block(results, tests):
    """Status of a group of tests (a list of cases.Test) given {name: TestResult}."""
    passed = [t.name for t in tests if _res(results, t) == "passed"]
    failed = [t.name for t in tests if _res(results, t) == "failed"]
    skipped = [t.name for t in tests if _res(results, t) == "skipped"]
    if failed:
        result = "failure"
    elif skipped and not passed:
        result = "skipped"
    elif skipped:
        result = "partial"
    else:
        result = "success"
    block = {"result": result,
             "statistics": {"Failed": len(failed), "Passed": len(passed),
                            "Skipped": len(skipped)}}
    if failed:
        block["failedTests"] = failed
    if skipped:
        block["skippedTests"] = skipped
    return block, passed


def _res(results, test):
    r = results.get(test.name)
    return r.result if r is not None else "skipped"


def _summary(core, ext):
    parts = []
    for label, block in (("Core", core), ("Extended", ext)):
        st = block["statistics"]
        if block["result"] == "success":
            parts.append("%s tests succeeded." % label)
        elif block["result"] == "failure":
            parts.append("%s tests failed with %d test failures." % (label, st["Failed"]))
        elif block["result"] == "partial":
            parts.append("%s tests partially succeeded with %d test skips."
                         % (label, st["Skipped"]))
        else:
            parts.append("%s tests were skipped." % label)
    return " ".join(parts)


def build(results, implementation, date=None):
    """The ConformanceReport as a dict; results is {test name: runner.TestResult}."""
    core_tests = [t for t in TESTS if t.level == "core"]
    ext_tests = [t for t in TESTS if t.level == "extended"]
    other_tests = [t for t in TESTS if t.level is None]
    core, _ = status_block(results, core_tests)
    ext, _ = status_block(results, ext_tests)
    ext["supportedFeatures"] = sorted(PROFILE_EXTENDED_FEATURES)
    other, other_passed = status_block(results, other_tests)
    if other_passed:
        other["passedTests"] = other_passed
    other["supportedFeatures"] = sorted(OTHER_FEATURES)
    now = date or datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "ConformanceReport",
        "date": now.isoformat().replace("+00:00", "Z"),
        "gatewayAPIVersion": GATEWAY_API_VERSION,
        "gatewayAPIChannel": GATEWAY_API_CHANNEL,
        "implementation": implementation,
        "mode": "default",
        "profiles": [{
            "name": PROFILE,
            "core": core,
            "extended": ext,
            "summary": _summary(core, ext),
        }],
        "otherTests": other,
    }


# ---------------------------------------------------------------------------------------------
# YAML (block style; strings quoted whenever a plain scalar could read as something else)

_PLAIN = re.compile(r"[A-Za-z_/][A-Za-z0-9_./@+-]*(?: [A-Za-z0-9_./@+(),-]+)*\.?$")
_SPECIAL = re.compile(r"(?i)(y|yes|n|no|true|false|on|off|null|~)$")


def _scalar(v):
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    s = str(v)
    if _PLAIN.match(s) and not _SPECIAL.match(s):
        return s
    return json.dumps(s, ensure_ascii=False)


def dump_yaml(value, indent=0):
    pad = " " * indent
    out = []
    if isinstance(value, dict):
        for k, v in value.items():
            if isinstance(v, (dict, list)) and v:
                out.append("%s%s:" % (pad, _scalar(k)))
                out.append(dump_yaml(v, indent + 2 if isinstance(v, dict) else indent))
            else:
                out.append("%s%s: %s" % (pad, _scalar(k), _inline(v)))
    else:
        for item in value:
            if isinstance(item, dict) and item:
                sub = dump_yaml(item, indent + 2).split("\n")
                sub[0] = pad + "- " + sub[0][indent + 2:]
                out.append("\n".join(sub))
            elif isinstance(item, list) and item:
                out.append(pad + "-")
                out.append(dump_yaml(item, indent + 2))
            else:
                out.append("%s- %s" % (pad, _inline(item)))
    return "\n".join(out)


def _inline(v):
    if isinstance(v, dict):
        return "{}"
    if isinstance(v, list):
        return "[]"
    return _scalar(v)


def to_yaml(report):
    return dump_yaml(report) + "\n"


# ---------------------------------------------------------------------------------------------
# Table

def table(rows):
    """rows: [(test, result, seconds, detail)] -> text with aligned columns. The detail column
    holds the first failure, cut to fit; the full details are printed after the table."""
    head = ("TEST", "RESULT", "SECONDS", "FAILURE")
    w0 = max([len(head[0])] + [len(r[0]) for r in rows])
    w1 = max([len(head[1])] + [len(r[1]) for r in rows])
    lines = ["%-*s  %-*s  %7s  %s" % (w0, head[0], w1, head[1], head[2], head[3])]
    for name, result, secs, detail in rows:
        d = detail if len(detail) <= 110 else detail[:107] + "..."
        lines.append("%-*s  %-*s  %7.1f  %s" % (w0, name, w1, result, secs, d))
    return "\n".join(lines)
