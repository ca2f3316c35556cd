"""The small core that runner/ and executors/ both import: the job spec, events and
failure reasons, errors, background clean-up, file names. It imports nothing else of pyci."""
