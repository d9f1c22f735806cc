# Python 2.7 (run with .venv/bin/python): writes a wstest spec file for
# run.sh and prints how many test cases it selects.
#
#   make_spec.py server|client URL OUTDIR AGENT CASES SPEC_PATH
#
# CASES is a comma-separated list of wstest case patterns: exact ids ("7.1.6")
# or patterns with "*" ("1.*", "12.1.*"). wstest turns "*" into ".*" and
# matches only at the start, so "12.1.1*" selects 12.1.1 and 12.1.10-12.1.18.
# Exact ids that do not exist are rejected here; wstest would crash on them.
import json
import sys

from autobahntestsuite.case import Cases, CaseCategories, CaseSubCategories, \
    CaseBasename, CaseSetname
from autobahntestsuite.caseset import CaseSet


def main(argv):
    if len(argv) != 7:
        sys.stderr.write(__doc__ if __doc__ else "bad arguments\n")
        sys.stderr.write("usage: make_spec.py server|client URL OUTDIR AGENT CASES SPEC_PATH\n")
        return 2
    mode, url, outdir, agent, cases_csv, spec_path = argv[1:]
    patterns = [p.strip() for p in cases_csv.split(",") if p.strip()]
    if not patterns:
        sys.stderr.write("make_spec.py: empty case list\n")
        return 2

    case_set = CaseSet(CaseSetname, CaseBasename, Cases, CaseCategories, CaseSubCategories)
    unknown = [p for p in patterns if "*" not in p and p not in case_set.CasesIndices]
    if unknown:
        sys.stderr.write("make_spec.py: unknown case id(s): %s\n" % ", ".join(unknown))
        return 2

    spec = {
        "outdir": outdir,
        "cases": patterns,
        "exclude-cases": [],
        "exclude-agent-cases": {},
    }
    if mode == "server":
        # fuzzingclient: wstest connects to the server under test.
        spec["options"] = {"failByDrop": False}
        spec["servers"] = [{"agent": agent, "url": url}]
    elif mode == "client":
        # fuzzingserver: the client under test connects to wstest.
        spec["url"] = url
        spec["options"] = {"failByDrop": False}
    else:
        sys.stderr.write("make_spec.py: mode must be server or client\n")
        return 2

    selected = case_set.parseSpecCases(spec)
    if not selected:
        sys.stderr.write("make_spec.py: the patterns %s select no case\n" % patterns)
        return 2

    with open(spec_path, "w") as f:
        json.dump(spec, f, indent=2, sort_keys=True)
        f.write("\n")
    print(len(selected))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
