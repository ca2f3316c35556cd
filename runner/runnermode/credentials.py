"""GitLab's registry `credentials` of a job, handed to the image puller.

The payload names registries the job may pull from with its own token (GitLab's container
registry, the dependency proxy). The container executor reads registry credentials from the
job's `DOCKER_AUTH_CONFIG` variable, so they are added there: under the job's own entries,
which win for the same host (gitlab-runner also prefers the job's DOCKER_AUTH_CONFIG). The
password is the job token, already in the job's environment as CI_JOB_TOKEN, and masked.
"""

from __future__ import annotations

import base64
import json
from dataclasses import replace
from urllib.parse import urlsplit

from runner.core.jobspec import JobSpec, Variable
from runner.runnermode.payload import Credential


def registry_host(url: str) -> str:
    """`http://registry.example.com:5000/` -> `registry.example.com:5000`."""
    return urlsplit(url if "://" in url else f"//{url}").netloc or url.strip("/")


def with_registry_credentials(spec: JobSpec, credentials: tuple[Credential, ...]) -> JobSpec:
    registries = [c for c in credentials if c.type.lower() == "registry" and c.url]
    if not registries:
        return spec
    auths: dict[str, dict[str, str]] = {}
    for credential in registries:
        pair = f"{credential.username}:{credential.password}".encode()
        auths[registry_host(credential.url)] = {"auth": base64.b64encode(pair).decode()}
    written = spec.variable("DOCKER_AUTH_CONFIG")
    if written:
        try:
            own = json.loads(written)
        except ValueError:
            return spec  # the job's own (broken) config: the puller reports it
        if isinstance(own, dict) and isinstance(own.get("auths"), dict):
            auths.update(own["auths"])
            document = {**own, "auths": auths}
        else:
            return spec
    else:
        document = {"auths": auths}
    variable = Variable("DOCKER_AUTH_CONFIG", json.dumps(document), public=False, masked=True)
    return replace(spec, variables=(*spec.variables, variable))
