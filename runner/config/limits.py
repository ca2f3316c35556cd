"""How big a configuration may get: GitLab's limits, with its default values and words.

GitLab keeps a pipeline's configuration bounded so that a hostile file cannot exhaust its
servers (lib/gitlab/config/loader/yaml.rb, Gitlab::Utils::DeepSize, the external mapper's
verifier). pyci keeps the same bounds, so that the same file is refused in the same words, and
so that `pyci validate` on an untrusted repository ends quickly in little memory.

Each number is GitLab's application setting of the same name, at its default.
"""

from __future__ import annotations

# `max_yaml_size_bytes` (2 MiB since GitLab 17.3): the memory the *parsed* data of one file may
# take, as Ruby's ObjectSpace.memsize_of counts it, summed over every value, aliases included
# each time they are used (see deepsize.py).
MAX_YAML_SIZE_BYTES = 2 * 1024 * 1024

# `max_yaml_depth`: how deeply mappings and lists of one file may nest.
MAX_YAML_DEPTH = 100

# GitLab's one message for both of the limits above.
TOO_BIG = "The parsed YAML is too big"

# `ci_max_includes`: included files per pipeline, duplicates counted.
MAX_INCLUDES = 150

# `ci_max_total_yaml_size_bytes` (max_yaml_size_bytes x ci_max_includes): the text of every
# included file together.
MAX_TOTAL_YAML_SIZE_BYTES = MAX_YAML_SIZE_BYTES * MAX_INCLUDES
TOTAL_TOO_BIG = "Total size of combined CI/CD configuration is too big"

# pyci's own: the text of one file, checked before it is read. GitLab measures the parsed data
# only, but YAML text parses to at least as many bytes as it has, except comments and blank
# space; a file bigger than the parsed limit could only pass if it were mostly comments. Refusing
# it unread keeps a 100 MB file from costing a 100 MB read and a parse.
MAX_FILE_BYTES = MAX_YAML_SIZE_BYTES

# pyci's own, for `!reference`: GitLab shares one resolved object wherever a reference is used,
# pyci inserts copies. The copies together may take eight times what one file may take (16 MiB,
# Ruby-sized: a big pipeline inserts its rule and script templates into hundreds of jobs); a
# chain of references that doubles at each step reaches that in a few steps, and stops there.
MAX_REFERENCE_COPY_BYTES = 8 * MAX_YAML_SIZE_BYTES
# ...and a reference whose target holds a reference, and so on, may go this deep (GitLab's
# nesting limit, applied to chains; GitLab documents 10 levels for scripts).
MAX_REFERENCE_DEPTH = MAX_YAML_DEPTH

# pyci's own, for `extends` and `default:`: GitLab composes one entry per key of every job, as
# pyci validates and plans one; a template of 1,600 keys extended by 3,000 jobs is 4.8 million
# of them (a 100 KB file: minutes and gigabytes for either). The jobs together may hold this
# many keys and list items once extended (ten times a big real pipeline's: 2,000 jobs of 50),
# counted without copying anything (extends shares its templates, merge.py).
MAX_EXPANDED_ENTRIES = 1_000_000
