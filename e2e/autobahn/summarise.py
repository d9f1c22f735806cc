#!/usr/bin/env python3
"""Summarise an Autobahn testsuite report and fail on non-conformance.

    summarise.py server|client|REPORT_DIR [EXPECTED] [--expected N] [--agent NAME]

Reads REPORT_DIR/index.json (server and client mean reports/server and
reports/client next to this file), prints how many cases ended with each
behavior and each close behavior, and lists every failing case with wstest's
reason from the case's own JSON file.

A case fails when
  - its behavior is anything but OK, NON-STRICT or INFORMATIONAL
    (so FAILED, UNIMPLEMENTED, NO_CLOSE), or
  - its close behavior is FAILED or UNCLEAN.
A close behavior of WRONG CODE or FAILED BY CLIENT is listed as a warning
(wstest's own report shows those as non-strict) and does not fail the run.

Exit status: 0 when every case passed; 1 when a case failed, the index is
missing or empty, the agent is absent, or fewer cases ran than EXPECTED;
2 on bad arguments.
"""
import argparse
import json
import sys
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent

PASSING_BEHAVIORS = {"OK", "NON-STRICT", "INFORMATIONAL"}
FAILING_CLOSE = {"FAILED", "UNCLEAN"}
WARNING_CLOSE = {"WRONG CODE", "FAILED BY CLIENT"}

# Printed first, in this order; any other value wstest reports follows.
BEHAVIOR_ORDER = ["OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED", "FAILED"]
CLOSE_ORDER = ["OK", "INFORMATIONAL", "WRONG CODE", "FAILED BY CLIENT", "UNCLEAN", "FAILED"]


def case_key(case_id):
    try:
        return tuple(int(part) for part in case_id.split("."))
    except ValueError:
        return (sys.maxsize, case_id)


def format_counts(counter, order):
    names = order + sorted(k for k in counter if k not in order)
    return "  ".join(f"{name} {counter.get(name, 0)}" for name in names)


def load_case_report(report_dir, entry):
    name = entry.get("reportfile")
    if not name:
        return {}
    try:
        return json.loads((report_dir / name).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def one_line(text, limit=300):
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def fail(message):
    print(f"autobahn summary: FAIL: {message}")
    print("autobahn: 0 passed, 1 failed")
    return 1


def main(argv):
    parser = argparse.ArgumentParser(
        description="Summarise an Autobahn testsuite report (see the module docstring)."
    )
    parser.add_argument("target", help="server, client, or a report directory holding index.json")
    parser.add_argument("expected_pos", nargs="?", type=int, metavar="EXPECTED",
                        help="number of cases that must have run")
    parser.add_argument("--expected", type=int, help="same as EXPECTED")
    parser.add_argument("--agent", help="agent to read (default: the only one in the index)")
    args = parser.parse_args(argv)
    expected = args.expected if args.expected is not None else args.expected_pos

    if args.target in ("server", "client"):
        report_dir = HERE / "reports" / args.target
    else:
        report_dir = Path(args.target)
    index_path = report_dir / "index.json"

    try:
        index = json.loads(index_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return fail(f"{index_path} is missing: no report was written")
    except (OSError, ValueError) as err:
        return fail(f"cannot read {index_path}: {err}")
    if not isinstance(index, dict) or not index:
        return fail(f"{index_path} holds no results")

    if args.agent:
        if args.agent not in index:
            return fail(f"agent {args.agent!r} not in {index_path} (agents: {', '.join(sorted(index))})")
        agent = args.agent
    elif len(index) == 1:
        agent = next(iter(index))
    else:
        return fail(f"{index_path} has several agents ({', '.join(sorted(index))}); pass --agent")

    cases = index[agent]
    if not isinstance(cases, dict) or not cases:
        return fail(f"{index_path} holds no cases for agent {agent!r}")

    behaviors = Counter()
    closes = Counter()
    failures = []
    warnings = []
    for case_id in sorted(cases, key=case_key):
        entry = cases[case_id]
        behavior = entry.get("behavior", "?")
        close = entry.get("behaviorClose", "?")
        behaviors[behavior] += 1
        closes[close] += 1
        failed = behavior not in PASSING_BEHAVIORS or close in FAILING_CLOSE or close == "?"
        if failed or close in WARNING_CLOSE:
            detail = load_case_report(report_dir, entry)
            result = detail.get("result", "(no case report)")
            if behavior == "UNIMPLEMENTED":
                result = ("the peer did not negotiate what this case tests"
                          + (" (permessage-deflate)" if case_id.split(".")[0] in ("12", "13") else "")
                          + f"; wstest: {result}")
            line = (
                f"  {case_id:<10} behavior={behavior} close={close}"
                f" (remote close code {entry.get('remoteCloseCode')})\n"
                f"             result: {one_line(result)}\n"
                f"             close:  {one_line(detail.get('resultClose', '(no case report)'))}"
            )
            (failures if failed else warnings).append(line)

    ran = len(cases)
    print(f"autobahn summary: {index_path} agent={agent} cases={ran}"
          + (f" expected={expected}" if expected is not None else ""))
    print(f"  behavior:      {format_counts(behaviors, BEHAVIOR_ORDER)}")
    print(f"  behaviorClose: {format_counts(closes, CLOSE_ORDER)}")

    if warnings:
        print(f"warnings, not failing ({len(warnings)}):")
        print("\n".join(warnings))
    if failures:
        print(f"failing cases ({len(failures)}), details in {report_dir}/<agent>_case_*.html:")
        print("\n".join(failures))

    missing = max(0, expected - ran) if expected is not None else 0
    if missing:
        print(f"FAIL: only {ran} of {expected} expected cases ran")
    ok = not failures and not missing
    print(f"autobahn summary: {'PASS' if ok else 'FAIL'}")
    print(f"autobahn: {ran - len(failures)} passed, {len(failures) + missing} failed")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
