#!/usr/bin/env python3
"""Where a Raft benchmark run's CPU goes, per process and per thread (issue #3).

    deploy/bench-threads.py [--binary PATH] [--clients 64] [--seconds 14] [--skip 7]
                            [--window 6] [--client-api async|sync]

Runs //raft:bench (built with `bazel build -c opt //raft:bench` unless --binary names one),
reads /proc/<pid>/task/*/stat of the driver (the load generator) and of each member once
`--skip` seconds after the start (members started, leader elected, load running) and again
`--window` seconds later, and prints, for each process (driver, leader, followers) and each of
its threads by name, the CPU it used per acknowledged write (microseconds; the run's throughput
from its JSON line) and in cores, then each process's total. Threads born inside the window
(none, in a steady run) count from zero. The skip and the window must fit inside --seconds
plus the start-up.
"""
import argparse
import collections
import json
import os
import subprocess
import sys
import time


def member_id(pid):
    """The member number in a member's command line (--member N), or 0 for the driver."""
    try:
        args = open("/proc/%d/cmdline" % pid, "rb").read().split(b"\0")
    except OSError:
        return 0
    for i, a in enumerate(args[:-1]):
        if a == b"--member":
            return int(args[i + 1])
    return 0


def children(parent):
    """The processes whose parent is `parent` (from /proc: no procps needed)."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = open("/proc/%s/stat" % entry).read()
        except OSError:
            continue
        if int(stat[stat.rindex(")") + 2:].split()[1]) == parent:
            out.append(int(entry))
    return out


def snapshot(pids):
    """(pid, tid) -> (thread name, user + system clock ticks)."""
    out = {}
    for pid in pids:
        try:
            tids = os.listdir("/proc/%d/task" % pid)
        except OSError:
            continue
        for tid in tids:
            try:
                stat = open("/proc/%d/task/%s/stat" % (pid, tid)).read()
            except OSError:
                continue
            name = stat[stat.index("(") + 1:stat.rindex(")")]
            fields = stat[stat.rindex(")") + 2:].split()
            out[(pid, tid)] = (name, int(fields[11]) + int(fields[12]))
    return out


def per_thread(before, after):
    """(pid, thread name) -> clock ticks used between the two snapshots."""
    used = collections.defaultdict(int)
    for key, (name, ticks) in after.items():
        used[(key[0], name)] += ticks - before.get(key, (name, 0))[1]
    return used


def report(used, roles, writes, window, hz):
    """Lines of the report: per process (in `roles` order), its threads, busiest first."""
    lines = []
    for pid, role in roles:
        threads = sorted(((n, t) for (p, n), t in used.items() if p == pid and t > 0),
                         key=lambda x: -x[1])
        total = sum(t for _, t in threads)
        for name, ticks in threads:
            lines.append("%-10s %-16s %7.1f us/write %5.2f cores" %
                         (role, name, ticks / hz * 1e6 / writes, ticks / hz / window))
        lines.append("%-10s %-16s %7.1f us/write %5.2f cores" %
                     (role, "(total)", total / hz * 1e6 / writes, total / hz / window))
    return lines


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--binary", help="raft_bench to run (default: build //raft:bench -c opt)")
    ap.add_argument("--clients", type=int, default=64)
    ap.add_argument("--seconds", type=int, default=14, help="the benchmark's measured seconds")
    ap.add_argument("--skip", type=float, default=7, help="seconds before the first reading")
    ap.add_argument("--window", type=float, default=6, help="seconds between the readings")
    ap.add_argument("--client-api", default="async", choices=["async", "sync"])
    a = ap.parse_args()
    binary = a.binary
    if binary is None:
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        subprocess.run(["bazel", "build", "-c", "opt", "//raft:bench"], cwd=root, check=True,
                       stdout=sys.stderr)
        bin_dir = subprocess.run(["bazel", "info", "-c", "opt", "bazel-bin"], cwd=root,
                                 check=True, capture_output=True, text=True).stdout.strip()
        binary = os.path.join(bin_dir, "raft", "bench", "raft_bench")
    cmd = [binary, "--nodes", "3", "--clients", str(a.clients), "--seconds", str(a.seconds),
           "--client-api", a.client_api]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(a.skip)  # the members start and elect; the load runs (a measurement window)
        members = children(proc.pid)
        pids = [proc.pid] + members
        before = snapshot(pids)
        t0 = time.monotonic()
        time.sleep(a.window)
        after = snapshot(pids)
        window = time.monotonic() - t0
        ids = {pid: member_id(pid) for pid in members}
        out, err = proc.communicate()
    except BaseException:
        proc.terminate()  # it stops its members and removes its directory
        proc.wait()
        raise
    if proc.returncode != 0 or not out.strip():
        sys.stderr.write(err)
        sys.exit("bench-threads: the benchmark failed (exit %d)" % proc.returncode)
    result = json.loads(out.strip().splitlines()[-1])
    leader = 0
    for line in err.splitlines():
        if line.startswith("raft_bench: member ") and " leads" in line:
            leader = int(line.split()[2])
    roles = [(proc.pid, "driver")]
    roles += sorted(((pid, "leader" if i == leader else "follower-%d" % i)
                     for pid, i in ids.items()), key=lambda r: r[1] != "leader")
    writes = result["throughput"] * window
    if writes <= 0:
        sys.exit("bench-threads: the benchmark acknowledged no write")
    print(out.strip().splitlines()[-1])
    print("%.0f writes/s; CPU over %.1f s of the window, per acknowledged write:" %
          (result["throughput"], window))
    for line in report(per_thread(before, after), roles, writes, window,
                       os.sysconf("SC_CLK_TCK")):
        print(line)


if __name__ == "__main__":
    main()
