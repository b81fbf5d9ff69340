#!/usr/bin/env python3
"""Size rules of src/ (STYLE.md §3): no file over 600 lines, no function over 80 lines unless a
comment says why.

Usage: python3 scripts/sizes.py [--max-file N] [--max-fn N]

A function's length counts from its `fn` line to its closing brace (comments and blank lines
included). A long function passes when its doc comment or its first lines carry a comment that
says why it is not split, starting `Long:`, `Long because` or `Long by design` (e.g. `// Long: one exhaustive
match, the whole map in one place.`). Test modules (`tests.rs`, `tests/`, `#[cfg(test)]` blocks) count for the
file rule, not for the function rule.

Exit status: 1 when a rule is broken.
"""

import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from layers import ROOT, strip  # noqa: E402

FN = re.compile(r"^\s*(?:pub(?:\([^)]*\))?\s+)?(?:const\s+)?(?:async\s+)?(?:unsafe\s+)?fn\s+(\w+)")


def functions(text):
    """(name, first line, line count, has a `Long:` reason) for each fn with a body."""
    lines = text.split("\n")
    clean = strip(text).split("\n")
    out = []
    for i, line in enumerate(clean):
        m = FN.match(line)
        if not m:
            continue
        depth, started, end = 0, False, None
        for j in range(i, len(clean)):
            for ch in clean[j]:
                if ch == "{":
                    depth += 1
                    started = True
                elif ch == "}":
                    depth -= 1
                elif ch == ";" and not started and depth == 0:
                    end = -1
                    break
                if started and depth == 0:
                    end = j
                    break
            if end is not None:
                break
        if end is None or end < 0:
            continue
        k = i
        while k > 0 and lines[k - 1].strip().startswith(("///", "#[", "//")):
            k -= 1
        head = "\n".join(lines[k:min(i + 4, end)])
        out.append((m.group(1), i + 1, end - i + 1, bool(re.search(r"\bLong(:| because| by design)", head))))
    return out


def main():
    max_file = 600
    max_fn = 80
    if "--max-file" in sys.argv:
        max_file = int(sys.argv[sys.argv.index("--max-file") + 1])
    if "--max-fn" in sys.argv:
        max_fn = int(sys.argv[sys.argv.index("--max-fn") + 1])
    big_files, long_fns, explained = [], [], 0
    for dirpath, _, names in os.walk(ROOT):
        for name in sorted(names):
            if not name.endswith(".rs"):
                continue
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, os.path.join(ROOT, ".."))
            text = open(path, encoding="utf-8").read()
            n = text.count("\n")
            if n > max_file:
                big_files.append((rel, n))
            is_test = name == "tests.rs" or "tests" in os.path.relpath(dirpath, ROOT).split(os.sep)
            if is_test:
                continue
            body = re.split(r"#\[cfg\(test\)\]\s*mod\s+tests\s*\{", text)[0]
            for fname, line, count, why in functions(body):
                if count > max_fn:
                    if why:
                        explained += 1
                    else:
                        long_fns.append((rel, line, fname, count))
    print(f"sizes: files over {max_file} lines: {len(big_files)}; functions over {max_fn} lines "
          f"without a `Long:` reason: {len(long_fns)} ({explained} with one)")
    for rel, n in big_files:
        print(f"  file {rel}: {n} lines")
    for rel, line, fname, count in long_fns:
        print(f"  fn {rel}:{line} {fname}: {count} lines")
    if big_files or long_fns:
        sys.exit(1)


if __name__ == "__main__":
    main()
