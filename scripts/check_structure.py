#!/usr/bin/env python3
"""Checks the source tree's shape (ARCHITECTURE.md): the scheduler's
layering, no source file over 800 lines, and no function over 80 lines.

A function is a definition that starts at the beginning of a line and ends
at the next line holding only "}" (clang-format's Google style puts every
namespace-level definition that way); a test body counts as a function.
Data tables are exempt: a definition whose opening line has "= {" (an
initialised array or map), or a function whose comment says it returns
"a data table" in its last line. Prints each violation as
"path:line: rule" and exits 1 when there is one.
"""
import re
import subprocess
import sys

MAX_FILE_LINES = 800
MAX_FUNCTION_LINES = 80

# (files matching, include that must not appear, why)
LAYERING = [
    (r"^scheduler/store/", r'#include "scheduler/(core|engine|reports|api)/',
     "the store depends only on protos and common/"),
    (r"^scheduler/core/", r'#include "scheduler/(store|engine|reports|api)/',
     "the state machine depends only on protos and common/"),
    (r"^scheduler/engine/", r'#include "scheduler/(reports|api)/',
     "the engine sits below reports and the API"),
    (r"^scheduler/reports/", r'#include "scheduler/api/',
     "reports sit below the API"),
    (r"^scheduler/api/", r'#include "scheduler/store/store\.h"',
     "the API takes the store's narrow interfaces, not the whole store"),
]

# A line that may begin a definition: an identifier at column 0.
BEGINS = re.compile(r"^[A-Za-z_~]")
NOT_FUNCTION = re.compile(r"^(namespace|class|struct|enum|union|extern|"
                          r"typedef|using|static_assert|template\s*<[^>]*>\s*"
                          r"(class|struct))\b|^(public|private|protected):")


def sources():
    out = subprocess.check_output(
        ["git", "ls-files", "*.cc", "*.h"], text=True).split()
    return [p for p in out if not p.startswith("tests/fuzz/corpus/")]


def check_file(path, problems):
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if len(lines) > MAX_FILE_LINES:
        problems.append(f"{path}:1: {len(lines)} lines, over "
                        f"{MAX_FILE_LINES}")
    for pattern, include, why in LAYERING:
        if not re.search(pattern, path):
            continue
        for n, line in enumerate(lines, 1):
            if re.match(include, line):
                problems.append(f"{path}:{n}: {line.strip()} ({why})")
    candidate = None  # where a definition at column 0 begins
    start = None  # where the function being read begins
    for n, line in enumerate(lines, 1):
        if start is not None:
            if line in ("}", "};"):
                length = n - start + 1
                if length > MAX_FUNCTION_LINES:
                    name = lines[start - 1].strip()[:60]
                    problems.append(f"{path}:{start}: function of {length} "
                                    f"lines, over {MAX_FUNCTION_LINES}: {name}")
                start = None
            continue
        if candidate is None:
            if not BEGINS.match(line) or NOT_FUNCTION.search(line):
                continue
            candidate = n
        stripped = line.rstrip()
        if stripped.endswith(";") or (candidate != n and BEGINS.match(line)
                                      and NOT_FUNCTION.search(line)):
            candidate = None
        elif stripped.endswith("{"):
            above = lines[candidate - 2] if candidate > 1 else ""
            if "= {" in stripped or "data table" in above:
                candidate = None
            else:
                start, candidate = candidate, None


def main():
    problems = []
    for path in sources():
        check_file(path, problems)
    for p in problems:
        print(p)
    if problems:
        print(f"check_structure: {len(problems)} problem(s)", file=sys.stderr)
        return 1
    print("check_structure: layering, file and function sizes ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
