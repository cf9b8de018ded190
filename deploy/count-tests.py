#!/usr/bin/env python3
"""Counts test cases from Bazel's test results and prints `N passed, N failed[, N skipped]`.

Usage: count-tests.py TESTLOGS_DIR TARGET... [--logs OTHER_DIR TARGET...]...

Each `--logs DIR` starts a new group of targets whose results are read from DIR instead (the fuzz
runs of deploy/fuzz.sh write theirs outside Bazel's test logs). Each target's JUnit XML (written by GoogleTest, or by Bazel for other tests) is read from
TESTLOGS_DIR/<package>/<name>/[shard_*/]test.xml. A target with no XML (it failed to build, or
timed out before writing one) counts as one failed test, so a broken build never reads as green.
"""
import glob
import os
import sys
import xml.etree.ElementTree as ET


def count_target(testlogs, target):
    package, name = target.lstrip("/").split(":", 1)
    base = os.path.join(testlogs, package, name)
    files = sorted(glob.glob(os.path.join(base, "test.xml")) +
                   glob.glob(os.path.join(base, "shard_*", "test.xml")))
    if not files:
        return 0, 1, 0, ["%s: no test results (did not build or run)" % target]
    passed = failed = skipped = 0
    problems = []
    for path in files:
        try:
            root = ET.parse(path).getroot()
        except ET.ParseError as e:
            failed += 1
            problems.append("%s: unreadable %s (%s)" % (target, path, e))
            continue
        cases = root.iter("testcase")
        seen = 0
        for case in cases:
            seen += 1
            if case.find("failure") is not None or case.find("error") is not None:
                failed += 1
                problems.append("%s: %s.%s failed" % (target, case.get("classname"), case.get("name")))
            elif case.find("skipped") is not None or case.get("status") == "notrun":
                skipped += 1
            else:
                passed += 1
        if seen == 0:
            # A test with no cases at all is a failure: it ran nothing.
            failed += 1
            problems.append("%s: ran no test case" % target)
    return passed, failed, skipped, problems


def groups(args):
    """[(testlogs, [targets])] from TESTLOGS TARGET... [--logs DIR TARGET...]..."""
    out = [(args[0], [])]
    i = 1
    while i < len(args):
        if args[i] == "--logs":
            if i + 1 >= len(args):
                sys.exit("count-tests.py: --logs needs a directory")
            out.append((args[i + 1], []))
            i += 2
            continue
        out[-1][1].append(args[i])
        i += 1
    return out


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    total = [0, 0, 0]
    problems = []
    for testlogs, target in [(d, t) for d, ts in groups(sys.argv[1:]) for t in ts]:
        p, f, s, probs = count_target(testlogs, target)
        total[0] += p
        total[1] += f
        total[2] += s
        problems += probs
    for line in problems:
        print(line)
    line = "%d passed, %d failed" % (total[0], total[1])
    if total[2]:
        line += ", %d skipped" % total[2]
    print(line)
    return 1 if total[1] else 0


if __name__ == "__main__":
    sys.exit(main())
