"""Models of keywords a file does not write are neither imported nor built (`Deferred`), and
keywords validated on first use report their problems exactly where eager ones did."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from runner.config.validate import validate_job, validate_shape
from runner.config.yamlload import load_yaml

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import sys
from runner.config.validate import validate_pipeline
from runner.config.yamlload import load_yaml

document = load_yaml(sys.argv[1], "ci.yml")
globals_ = {key: value for key, value in document.items() if key == "stages"}
jobs = {key: value for key, value in document.items() if key != "stages"}
validate_pipeline(globals_, jobs)
print(" ".join(sorted(name for name in sys.modules if name.startswith("runner.config.models"))))
"""


def imported_models(text: str) -> set[str]:
    """The model modules a fresh process imports to validate `text`."""
    result = subprocess.run(
        [sys.executable, "-c", PROBE, text],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return set(result.stdout.split())


def test_a_plain_pipeline_does_not_import_the_models_of_rare_keywords():
    modules = imported_models("stages: [build]\nbuild: {stage: build, script: [make]}\n")
    assert "runner.config.models" in modules
    assert "runner.config.models_ignored" not in modules
    assert "runner.config.models_include" not in modules


def test_a_rare_keyword_imports_its_models_when_written():
    modules = imported_models("build: {script: [make], environment: production}\n")
    assert "runner.config.models_ignored" in modules


def test_problems_under_a_deferred_keyword_keep_their_path_and_line():
    problems = validate_shape(
        load_yaml(
            """
deploy:
  script: x
  environment: {name: prod, action: launch}
  secrets:
    DB: {vault: {engine: {name: kv}, path: p}}
""",
            "ci.yml",
        ),
        "ci.yml",
    )
    assert [str(problem) for problem in problems] == [
        "ci.yml:4:29: jobs:deploy:environment:action config should be one of: "
        "start, prepare, stop, verify, access",
        "ci.yml:6:10: jobs:deploy:secrets:DB:vault config missing required keys: field",
    ]


def test_deferred_models_are_the_declared_types():
    document = load_yaml(
        "j: {script: x, image: alpine, environment: prod, pages: {expire_in: 1d}}", "ci.yml"
    )
    model, problems = validate_job("j", document["j"])
    assert not problems
    assert type(model.image).__name__ == "ImageConfig" and model.image.name == "alpine"
    assert type(model.environment).__name__ == "EnvironmentConfig"
    assert model.environment.name == "prod" and model.environment.action == "start"
    assert model.pages.enabled is True and model.pages.expire_in == "1d"
