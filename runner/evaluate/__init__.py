"""Evaluation: which jobs exist and with which variables (see docs/evaluation.md).

expression (rules:if), re2syntax (RE2 patterns in Python), variables (expansion, precedence),
predefined (CI_* from git), globs (GitLab's fnmatch), changes (the local diff), rules (rules,
only/except, workflow, include rules).
"""
