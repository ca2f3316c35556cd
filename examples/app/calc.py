"""A tiny library for the example pipeline: parse and evaluate `a + b * c` expressions."""

VERSION = "1.2.0"


def tokenize(text):
    tokens, number = [], ""
    for char in text.replace(" ", ""):
        if char.isdigit():
            number += char
            continue
        if number:
            tokens.append(int(number))
            number = ""
        if char not in "+-*":
            raise ValueError(f"unexpected character {char!r}")
        tokens.append(char)
    if number:
        tokens.append(int(number))
    return tokens


def evaluate(text):
    """Evaluate with `*` binding tighter than `+` and `-`."""
    terms, sign, product = [], 1, None
    pending = None
    for token in tokenize(text):
        if isinstance(token, int):
            product = token if pending != "*" else product * token
        elif token == "*":
            pending = "*"
            continue
        else:
            terms.append(sign * product)
            sign = 1 if token == "+" else -1
        pending = None
    terms.append(sign * product)
    return sum(terms)


if __name__ == "__main__":
    import sys

    print(evaluate(" ".join(sys.argv[1:]) or "1 + 2 * 3"))
