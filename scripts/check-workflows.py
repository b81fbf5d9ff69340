"""References inside GitHub workflow files that a schema cannot see (scripts/check-workflows.sh).

For each file: `needs:` names jobs of the same file; `uses: ./path` names an existing workflow
that declares `on: workflow_call`; `uses: owner/name@ref` has a version ref (`vX`, `vX.Y.Z`);
`matrix.KEY` used by a job is defined in its `strategy.matrix` (keys or `include` entries).
Prints "ok - ..." or "not ok - ..." per file and check; exits 1 on any failure.
"""

import re
import sys
from pathlib import Path

from ruamel.yaml import YAML


def triggers(doc):
    on = doc.get("on", doc.get(True))
    if isinstance(on, str):
        return {on}
    if isinstance(on, list):
        return set(on)
    return set(on or {})


def check(path):
    doc = YAML(typ="safe").load(Path(path).read_text())
    jobs = doc.get("jobs") or {}
    problems = []
    for name, job in jobs.items():
        needs = job.get("needs", [])
        for need in [needs] if isinstance(needs, str) else needs:
            if need not in jobs:
                problems.append(f"job {name}: needs unknown job {need!r}")
        uses = [job.get("uses")] + [s.get("uses") for s in job.get("steps", [])]
        for use in filter(None, uses):
            if use.startswith("./"):
                target = Path(use)
                if not target.is_file():
                    problems.append(f"job {name}: {use} does not exist")
                elif "workflow_call" not in triggers(YAML(typ="safe").load(target.read_text())):
                    problems.append(f"job {name}: {use} has no `on: workflow_call`")
            elif not re.fullmatch(r"[\w.-]+/[\w./-]+@v\d+(\.\d+){0,2}", use):
                problems.append(f"job {name}: {use} is not pinned to a version")
        matrix = (job.get("strategy") or {}).get("matrix") or {}
        keys = set(matrix) | {k for entry in matrix.get("include", []) for k in entry}
        text = repr(job)
        for key in set(re.findall(r"matrix\.([A-Za-z_][\w-]*)", text)):
            if key not in keys:
                problems.append(f"job {name}: matrix.{key} is not defined")
    return problems


def main(files):
    failed = False
    for path in files:
        problems = check(path)
        for p in problems:
            print(f"# {path}: {p}")
        print(f"{'not ok' if problems else 'ok'} - references {path}")
        failed |= bool(problems)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
