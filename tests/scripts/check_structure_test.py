#!/usr/bin/env python3
"""Tests of scripts/check_structure.py: each rule is broken in a small git
tree of its own, and the checker must name it; a tree that keeps the rules
passes."""
import os
import subprocess
import sys
import tempfile
import unittest

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                      "scripts", "check_structure.py")


def function(name, body_lines, signature_lines=1):
    """A namespace-level function whose definition spans
    signature_lines + body_lines + 1 lines."""
    head = [f"int {name}(int a,"] + ["    int b,"] * (signature_lines - 2)
    head = (head + ["    int c) {"]) if signature_lines > 1 else \
        [f"int {name}(int a) {{"]
    return "\n".join(head + ["  a += 1;"] * body_lines + ["}"]) + "\n"


class CheckStructureTest(unittest.TestCase):
    def run_on(self, files):
        with tempfile.TemporaryDirectory() as root:
            for path, text in files.items():
                os.makedirs(os.path.join(root, os.path.dirname(path)),
                            exist_ok=True)
                with open(os.path.join(root, path), "w") as f:
                    f.write(text)
            subprocess.run(["git", "init", "-q"], cwd=root, check=True)
            subprocess.run(["git", "add", "-A"], cwd=root, check=True)
            done = subprocess.run([sys.executable, SCRIPT], cwd=root,
                                  capture_output=True, text=True)
            return done.returncode, done.stdout

    def test_a_tree_that_keeps_the_rules_passes(self):
        code, out = self.run_on({
            "scheduler/api/a.cc": '#include "scheduler/store/usage_index.h"\n'
                                  + function("F", 78),
            "scheduler/engine/b.cc": '#include "scheduler/core/c.h"\n'
                                     '#include "scheduler/store/store.h"\n',
            "common/c.h": "\n" * 799,
        })
        self.assertEqual(code, 0, out)

    def test_each_layering_rule_is_enforced(self):
        for path, include in [
                ("scheduler/store/x.cc", "scheduler/core/state_machine.h"),
                ("scheduler/core/x.cc", "scheduler/store/store.h"),
                ("scheduler/engine/x.cc", "scheduler/reports/usage.h"),
                ("scheduler/reports/x.cc", "scheduler/api/auth.h"),
                ("scheduler/api/x.cc", "scheduler/store/store.h")]:
            code, out = self.run_on({path: f'#include "{include}"\n'})
            self.assertEqual(code, 1, path)
            self.assertIn(f"{path}:1: #include \"{include}\"", out)

    def test_a_file_over_800_lines_is_named(self):
        code, out = self.run_on({"agent/big.cc": "//\n" * 801})
        self.assertEqual(code, 1)
        self.assertIn("agent/big.cc:1: 801 lines, over 800", out)

    def test_a_function_over_80_lines_is_named_where_it_begins(self):
        code, out = self.run_on({
            "agent/f.cc": "// x\n" + function("Long", 78, signature_lines=3)})
        self.assertEqual(code, 1)
        self.assertIn("agent/f.cc:2: function of 82 lines, over 80", out)

    def test_a_test_body_counts_as_a_function(self):
        body = "\n".join(["  EXPECT_TRUE(true);"] * 80)
        code, out = self.run_on(
            {"tests/t.cc": f"TEST(A, B) {{\n{body}\n}}\n"})
        self.assertEqual(code, 1)
        self.assertIn("tests/t.cc:1: function of 82 lines", out)

    def test_data_tables_are_exempt(self):
        rows = "\n".join(['    {"a", 1},'] * 100)
        code, out = self.run_on({
            "client/t.cc":
                f"const Row kRows[] = {{\n{rows}\n}};\n"
                "// Every row there is: a data table.\n"
                f"const std::vector<Row>& Rows() {{\n"
                f"  static const auto* k = new std::vector<Row>{{\n{rows}\n"
                "  };\n  return *k;\n}\n"})
        self.assertEqual(code, 0, out)


if __name__ == "__main__":
    unittest.main()
