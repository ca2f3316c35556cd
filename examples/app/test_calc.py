"""Unit tests of calc.py; prints the share of calc.py's lines they executed (for `coverage:`)."""

import sys
import unittest
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

executed = set()


def tracer(frame, event, arg):
    if frame.f_code.co_filename == str(HERE / "calc.py"):
        executed.add(frame.f_lineno)
    return tracer


sys.settrace(tracer)
import calc  # noqa: E402


class CalcTest(unittest.TestCase):
    def test_precedence(self):
        self.assertEqual(calc.evaluate("1 + 2 * 3"), 7)

    def test_subtraction(self):
        self.assertEqual(calc.evaluate("10 - 2 * 3 - 1"), 3)

    def test_rejects_letters(self):
        with self.assertRaises(ValueError):
            calc.evaluate("1 + x")


if __name__ == "__main__":
    result = unittest.main(exit=False, verbosity=2).result
    sys.settrace(None)
    source = (HERE / "calc.py").read_text().splitlines()
    code_lines = {
        number
        for number, line in enumerate(source, 1)
        if line.strip() and not line.strip().startswith(("#", '"""', "import", "if __name__"))
    }
    covered = len(code_lines & executed) / len(code_lines) * 100
    print(f"Line coverage: {covered:.1f}%")
    sys.exit(0 if result.wasSuccessful() else 1)
