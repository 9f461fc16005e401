#!/usr/bin/env python3
"""Lists the longest functions of the given files, else src/ (clang-formatted code: a definition starts at column 0 and its body ends with
a '}' at column 0). Usage: function-lengths.py [--max N] [files...]; exits 1 when one is longer than N lines."""
import pathlib, re, sys

args = sys.argv[1:]
limit = None
if args[:1] == ["--max"]:
    limit, args = int(args[1]), args[2:]
files = [pathlib.Path(f) for f in args] or sorted(pathlib.Path("src").rglob("*.cpp"))
found = []
for path in files:
    lines = path.read_text().splitlines()
    start = None
    for i, line in enumerate(lines):
        if start is None:
            if line and not line[0].isspace() and not re.match(r"(namespace|struct|class|enum|union|#|//|}|template|using|extern)", line) \
                    and "(" in line and not line.rstrip().endswith(";"):
                start = i
        elif line == "}" or line.startswith("};"):
            found.append((i - start + 1, f"{path}:{start + 1}", lines[start].strip()[:80]))
            start = None
        elif line.startswith(("namespace", "}  // namespace")):
            start = None
found.sort(reverse=True)
for n, where, head in found[:10]:
    print(f"{n:4d}  {where}  {head}")
if limit is not None and found and found[0][0] > limit:
    sys.exit(1)
