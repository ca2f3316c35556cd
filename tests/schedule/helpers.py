"""Building JobSpecs by hand, as the planner would."""

from __future__ import annotations

from runner.core.jobspec import AllowFailure, JobSpec, Need, RetrySpec

STAGES = ("build", "test", "deploy")


def job(
    name: str,
    stage: str = "test",
    script: str = "true",
    *,
    needs: list[str] | None = None,
    when: str = "on_success",
    allow_failure: bool | tuple[int, ...] = False,
    retry: RetrySpec | None = None,
    start_in: float | None = None,
    dependencies: list[str] | None = None,
    no_artifacts_from: tuple[str, ...] = (),
) -> JobSpec:
    if isinstance(allow_failure, tuple):
        allow = AllowFailure(False, allow_failure)
    else:
        allow = AllowFailure(allow_failure)
    return JobSpec(
        name=name,
        stage=stage,
        stage_index=STAGES.index(stage),
        script=(script,),
        when=when,  # type: ignore[arg-type]
        allow_failure=allow,
        retry=retry or RetrySpec(),
        start_in=start_in,
        needs=None
        if needs is None
        else tuple(Need(n, artifacts=n not in no_artifacts_from) for n in needs),
        dependencies=None if dependencies is None else tuple(dependencies),
    )
