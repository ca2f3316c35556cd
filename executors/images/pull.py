"""Pull an image into the store: the top level of this package, as a list of steps.

    cached?  ->  resolve the manifest (index -> platform)  ->  config  ->  layers (in
    parallel: blob download, extraction, diff_id check)  ->  record + references

Pull policies (GitLab's `image:pull_policy`, Docker's names): `if-not-present` (default)
returns a cached image without a single request; `always` asks the registry for the manifest
and downloads only what is missing; `never` uses the store or fails.

With a size cap (`PYCI_STORE_MAX`), a pull that went to the registry ends by evicting least
recently used images that no live process holds, until the store fits (usage.py).
"""

from __future__ import annotations

import concurrent.futures
import os
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import BinaryIO

import httpx

from executors.images.auth import CredentialStore, TokenCache
from executors.images.config import chain_ids, diff_ids, image_config_from_json
from executors.images.errors import ImagePullError, RegistryUnreachable
from executors.images.extract import extract_layer
from executors.images.growing import DownloadAborted, GrowingBlob
from executors.images.manifest import (
    INDEX_TYPES,
    Platform,
    host,
    load_json,
    media_type_of,
    parse_manifest,
    parse_platform,
    select_platform,
    sha256_digest,
    verify_digest,
)
from executors.images.progress import NullProgress, PullProgress
from executors.images.reference import DOCKER_HUB, Reference, is_loopback, parse_reference
from executors.images.registry import Endpoint, RegistryClient, RequestCounter, new_http_client
from executors.images.store import ImageRecord, ImageStore, LayerRecord, PulledImage

__all__ = [
    "PULL_POLICIES",
    "ImagePullError",
    "ImageStore",
    "PulledImage",
    "RequestCounter",
    "mirrors_from_env",
    "pull_image",
    "pull_with_policies",
]

PULL_POLICIES = ("always", "if-not-present", "never")
DEFAULT_POLICY = "if-not-present"
MAX_PARALLEL_LAYERS = 4


def mirrors_from_env(env: dict[str, str] | None = None) -> tuple[str, ...]:
    """`PYCI_REGISTRY_MIRROR`: one or more mirror URLs, separated by commas or spaces."""
    text = (env if env is not None else os.environ).get("PYCI_REGISTRY_MIRROR", "")
    return tuple(part for part in text.replace(",", " ").split() if part)


def pull_image(
    store: ImageStore,
    reference: str,
    *,
    policy: str = DEFAULT_POLICY,
    auth: CredentialStore | None = None,
    mirrors: Iterable[str] = (),
    insecure: Iterable[str] = (),
    progress: PullProgress | None = None,
    platform: str | Platform | None = None,
    counter: RequestCounter | None = None,
) -> PulledImage:
    """Make `reference` available in `store` according to `policy` and return it.

    `auth`: where credentials come from (default: `DOCKER_AUTH_CONFIG`, then the docker
    config file). `mirrors`: Docker Hub mirrors tried in order before Docker Hub.
    `insecure`: registry hosts that may be reached over plain HTTP (loopback always may).
    `counter` (optional) accumulates the HTTP requests made; the result carries them too.
    """
    if policy not in PULL_POLICIES:
        raise ImagePullError(
            f"invalid pull policy {policy!r}: expected one of {', '.join(PULL_POLICIES)}"
        )
    ref = parse_reference(reference)
    if policy != "always":
        cached = store.get(ref)
        if cached is not None:
            return cached
        if policy == "never":
            raise ImagePullError(f"image {ref} is not present and the pull policy is never")
    wanted = parse_platform(platform) if isinstance(platform, str) else platform or host()
    counter = counter if counter is not None else RequestCounter()
    before = counter.count
    with new_http_client(counter) as http:
        puller = _Puller(
            store,
            ref,
            http,
            auth if auth is not None else CredentialStore.from_environment(),
            progress or NullProgress(),
            wanted,
        )
        with store.using():
            image = puller.run(_endpoints(ref, mirrors, insecure))
    # the image is held by this process now (store.get), so the cap never evicts it
    store.enforce_cap()
    return PulledImage(
        reference=image.reference,
        digest=image.digest,
        layer_dirs=image.layer_dirs,
        config=image.config,
        manifest_digest=image.manifest_digest,
        chain_ids=image.chain_ids,
        requests=counter.count - before,
    )


def pull_with_policies(store: ImageStore, reference: str, policies: Sequence[str], **options):
    """GitLab's list form of `pull_policy`: try each policy in order, the first that works
    wins (e.g. `[always, if-not-present]` falls back to the cache when the registry is down)."""
    errors: list[str] = []
    for policy in policies or (DEFAULT_POLICY,):
        try:
            return pull_image(store, reference, policy=policy, **options)
        except ImagePullError as exc:
            errors.append(f"{policy}: {exc}")
    raise ImagePullError(f"image {reference}: every pull policy failed ({'; '.join(errors)})")


def _endpoints(ref: Reference, mirrors: Iterable[str], insecure: Iterable[str]) -> list[Endpoint]:
    insecure = set(insecure)
    endpoints = []
    if ref.registry == DOCKER_HUB:
        for mirror in mirrors:
            scheme, _, rest = mirror.rpartition("://")
            mirror_host = rest.rstrip("/").split("/", 1)[0]
            endpoints.append(
                Endpoint(
                    mirror_host,
                    allow_http=is_loopback(mirror_host) or mirror_host in insecure,
                    scheme=scheme or None,
                )
            )
    api = ref.api_host
    endpoints.append(Endpoint(api, allow_http=is_loopback(api) or api in insecure))
    return endpoints


class _Puller:
    def __init__(
        self,
        store: ImageStore,
        ref: Reference,
        http: httpx.Client,
        credentials: CredentialStore,
        progress: PullProgress,
        wanted: Platform,
    ):
        self.store = store
        self.ref = ref
        self.http = http
        self.credentials = credentials
        self.progress = progress
        self.wanted = wanted
        self.tokens = TokenCache()

    def client(self, endpoint: Endpoint) -> RegistryClient:
        creds_host = self.ref.registry if endpoint.host == self.ref.api_host else None
        return RegistryClient(
            endpoint, self.ref.repository, self.http, self.credentials, self.tokens, creds_host
        )

    def run(self, endpoints: list[Endpoint]) -> PulledImage:
        errors = []
        for endpoint in endpoints:
            client = self.client(endpoint)
            try:
                return self.pull_from(client)
            except ImagePullError as exc:
                if endpoint is endpoints[-1]:
                    message = str(exc)
                    if errors:
                        message += f" (mirrors failed too: {'; '.join(errors)})"
                    if isinstance(exc, RegistryUnreachable):
                        raise RegistryUnreachable(f"{message}; {exc.HINT}") from exc
                    if errors:
                        raise ImagePullError(message) from exc
                    raise
                errors.append(str(exc))
        raise AssertionError("no endpoint")

    def pull_from(self, client: RegistryClient) -> PulledImage:
        repo_digest, manifest_digest, manifest = self.resolve(client)
        record = self.store.record(manifest_digest)
        if record is None or not all(self.store.has_layer(x.chain_id) for x in record.layers):
            record = self.fetch_image(client, repo_digest, manifest_digest, manifest)
        references = [f"{self.ref.name}@{repo_digest}"]
        if self.ref.tag and not self.ref.digest:
            references.append(f"{self.ref.name}:{self.ref.tag}")
        self.store.save_image(record, references)
        image = self.store.get(self.ref)
        if image is None:
            raise ImagePullError(f"image {self.ref}: store lost the image right after pulling")
        self.progress.finished()
        return image

    def resolve(self, client: RegistryClient) -> tuple[str, str, dict]:
        """(repo digest, platform manifest digest, manifest document)."""
        what = f"{self.ref}"
        data, header_type, header_digest = client.get_manifest(self.ref.manifest_ref)
        if self.ref.digest:
            verify_digest(data, self.ref.digest, f"{what} manifest")
            repo_digest = self.ref.digest
        else:
            repo_digest = sha256_digest(data)
            claimed = header_digest or ""
            if claimed.startswith("sha256:") and claimed != repo_digest:
                raise ImagePullError(
                    f"{what}: manifest digest mismatch, registry says {claimed}, "
                    f"content is {repo_digest}"
                )
        document = load_json(data, f"{what} manifest")
        if media_type_of(document, header_type) in INDEX_TYPES:
            entry = select_platform(document, self.wanted, f"{what} index")
            data, header_type, _ = client.get_manifest(entry.digest)
            verify_digest(data, entry.digest, f"{what} manifest for {self.wanted}")
            document = load_json(data, f"{what} manifest")
            if media_type_of(document, header_type) in INDEX_TYPES:
                raise ImagePullError(f"{what}: nested index is not supported")
            return repo_digest, entry.digest, document
        return repo_digest, repo_digest, document

    def fetch_image(
        self, client: RegistryClient, repo_digest: str, manifest_digest: str, document: dict
    ) -> ImageRecord:
        what = str(self.ref)
        manifest = parse_manifest(document, f"{what} manifest")
        config_bytes = self.config_blob(client, manifest.config.digest)
        config_doc = load_json(config_bytes, f"{what} config")
        ids = diff_ids(config_doc, len(manifest.layers))
        chains = chain_ids(ids)
        layers = tuple(
            LayerRecord(d.digest, diff_id, chain, d.size, d.media_type)
            for d, diff_id, chain in zip(manifest.layers, ids, chains, strict=True)
        )
        self.progress.resolved(what, repo_digest, len(layers))
        workers = max(1, min(MAX_PARALLEL_LAYERS, len(layers)))
        with concurrent.futures.ThreadPoolExecutor(workers, "pyci-pull") as pool:
            futures = [pool.submit(self.ensure_layer, client, layer) for layer in layers]
            for future in futures:
                future.result()  # the first failure (in layer order) is the one reported
        plat = config_doc.get("os", ""), config_doc.get("architecture", "")
        return ImageRecord(
            manifest_digest=manifest_digest,
            repo_digest=repo_digest,
            config_digest=manifest.config.digest,
            layers=layers,
            config=image_config_from_json(config_doc),
            platform="/".join(p for p in plat if p),
            created=str(config_doc.get("created", "")),
        )

    def config_blob(self, client: RegistryClient, digest: str) -> bytes:
        if not self.store.has_blob(digest):
            data = client.get_blob_bytes(digest)
            verify_digest(data, digest, f"{self.ref} config")
            self.store.add_blob(digest, lambda out: _replace_content(out, data))
        return self.store.blob_path(digest).read_bytes()

    def ensure_layer(self, client: RegistryClient, layer: LayerRecord) -> Path:
        if self.store.has_layer(layer.chain_id):
            self.progress.layer_start(layer.digest, layer.size, cached=True)
            return self.store.layer_dir(layer.chain_id)
        self.progress.layer_start(layer.digest, layer.size, cached=False)
        what = f"{self.ref} layer {layer.digest}"

        def extract(target: Path) -> None:
            if self.store.has_blob(layer.digest):
                self.progress.layer_extracting(layer.digest)
                with open(self.store.blob_path(layer.digest), "rb") as source:
                    actual = extract_layer(source, target, what)
            else:
                actual = self.download_and_extract(client, layer, target, what)
            if actual != layer.diff_id:
                raise ImagePullError(
                    f"{what}: diff_id mismatch, config says {layer.diff_id}, tar is {actual}"
                )

        path = self.store.add_layer(layer, extract)
        self.progress.layer_done(layer.digest)
        return path

    def download_and_extract(
        self, client: RegistryClient, layer: LayerRecord, target: Path, what: str
    ) -> str:
        """Extract while the blob downloads (the tar is read as it arrives); the layer is
        only kept when the blob's digest checks out too. Returns the diff_id."""
        feed = GrowingBlob()

        def fill(out) -> None:
            feed.attach(out.fileno())

            def on_bytes(count: int) -> None:
                out.flush()  # the reader uses its own descriptor: bytes must reach the file
                feed.grew(count)
                self.progress.layer_bytes(layer.digest, count)

            client.download_blob(layer.digest, layer.size, out, on_bytes)

        def download() -> None:
            try:
                path = self.store.add_blob(layer.digest, fill)
            except BaseException as exc:
                feed.finished(error=exc)
            else:
                feed.finished(path=str(path))

        thread = threading.Thread(target=download, name="pyci-download", daemon=True)
        thread.start()
        try:
            self.progress.layer_extracting(layer.digest)
            diff_id = extract_layer(feed, target, what)
        except BaseException as exc:
            # the download stops at its next chunk (it cleans up its temp file itself); a
            # stalled connection is not waited for. Its own error says more, if it had one:
            # once every byte has arrived it is only checking the digest, so it is waited for
            # (a corrupt blob is a digest mismatch, whichever side noticed first)
            feed.abort()
            if feed.received >= layer.size:
                thread.join()
            error = feed.error
            feed.close()
            if error is not None and not isinstance(error, DownloadAborted):
                raise error from exc
            raise
        thread.join()
        error = feed.error
        feed.close()
        if error is not None:
            raise error
        return diff_id


def _replace_content(out: BinaryIO, data: bytes) -> None:
    """Fill a blob's temp file with `data`, whatever a killed pull left in it."""
    out.seek(0)
    out.truncate()
    out.write(data)
