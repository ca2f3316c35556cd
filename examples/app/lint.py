"""A small style check: exits 2 (a warning, allowed to fail in the pipeline) on long lines or
trailing spaces, 1 if a file does not even compile."""

import sys
from pathlib import Path

problems = 0
for path in sorted(Path(sys.argv[1]).glob("*.py")):
    text = path.read_text()
    try:
        compile(text, str(path), "exec")
    except SyntaxError as error:
        print(f"{path}:{error.lineno}: {error.msg}")
        sys.exit(1)
    for number, line in enumerate(text.splitlines(), 1):
        if len(line) > 100 or line != line.rstrip():
            print(f"{path}:{number}: style: long line or trailing spaces")
            problems += 1
print(f"lint: {problems} style problem(s)")
sys.exit(2 if problems else 0)
