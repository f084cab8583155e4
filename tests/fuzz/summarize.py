"""One line per phase from schemathesis' text output: operations, cases, failures, errors.

Usage: summarize.py PHASE EXIT_CODE REPORT_DIR (REPORT_DIR holds output.txt).
"""

import pathlib
import re
import sys

phase, rc, reports = sys.argv[1], sys.argv[2], pathlib.Path(sys.argv[3])
text = (reports / "output.txt").read_text(errors="replace")


def first(pattern: str, default: str = "?") -> str:
    m = re.search(pattern, text, re.MULTILINE)
    return m.group(1).strip() if m else default


operations = first(r"^\s*Operations:\s+(.+)$")
tested = first(r"^\s*Tested:\s+(\d+)")
cases = first(r"^\s*(\d+) generated")
final = first(r"^=+ (.+?) =+\s*$(?![\s\S]*^=+ )", "no final line")
verdict = "passed" if rc == "0" else f"FAILED (exit {rc})"
print(
    f"{phase}: operations {operations}, {tested} tested, {cases} cases; {final}; {verdict}"
)
