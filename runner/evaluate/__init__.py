"""Evaluation: which jobs exist and with which variables (see docs/evaluation.md).

expression (rules:if), re2syntax (patterns run on RE2), variables (expansion, precedence),
predefined (CI_* from git), globs (GitLab's fnmatch), changes (the local diff), rules (rules,
only/except, workflow, include rules).
"""
