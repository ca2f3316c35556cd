"""`pyci image`: pull, list, inspect, remove and prune images in the local store.

`pull` behaves like `docker pull` (it asks the registry) unless `--pull-policy if-not-present`
finds the image cached, then it sends no request at all. Progress is a bar per layer on a
terminal and plain lines otherwise. The store is `$PYCI_HOME` (default ~/.local/share/pyci).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

POLICIES = ("always", "if-not-present", "never")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "image",
        help="pull, list, inspect and remove container images",
        description="Manage the image store ($PYCI_HOME, default ~/.local/share/pyci).",
    )
    commands = parser.add_subparsers(dest="image_command", metavar="SUBCOMMAND", required=True)

    pull = commands.add_parser("pull", help="pull an image from its registry")
    pull.add_argument("reference", metavar="REF")
    pull.add_argument(
        "--pull-policy",
        choices=POLICIES,
        default="always",
        help="always (default, like docker pull), if-not-present (no request when cached), never",
    )
    add_registry_options(pull)
    pull.add_argument("--platform", metavar="OS/ARCH[/VARIANT]", help="default: this host's")
    pull.set_defaults(handler=_pull)

    ls = commands.add_parser("ls", help="list the images in the store")
    ls.add_argument("--json", action="store_true", help="print JSON instead of a table")
    ls.set_defaults(handler=_ls)

    inspect = commands.add_parser("inspect", help="print an image's record as JSON")
    inspect.add_argument("reference", metavar="REF")
    inspect.set_defaults(handler=_inspect)

    rm = commands.add_parser("rm", help="remove an image reference (prune frees the space)")
    rm.add_argument("references", metavar="REF", nargs="+")
    rm.set_defaults(handler=_rm)

    prune = commands.add_parser(
        "prune",
        help="delete blobs and layers no image uses; with a size cap, least recently used images",
    )
    prune.add_argument(
        "--max-size",
        type=_size,
        metavar="SIZE",
        help="evict least recently used images (none a running pyci uses) until the store "
        "fits, e.g. 10G (default: $PYCI_STORE_MAX, else no cap)",
    )
    prune.set_defaults(handler=_prune)


def _size(text: str) -> int:
    from executors.sizes import parse_size

    try:
        return parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_registry_options(parser: argparse.ArgumentParser) -> None:
    """`--registry-mirror` and `--insecure-registry`, as Docker's daemon options say them."""
    parser.add_argument(
        "--registry-mirror",
        action="append",
        default=[],
        metavar="URL",
        help="Docker Hub mirror, tried first (repeatable; also $PYCI_REGISTRY_MIRROR)",
    )
    parser.add_argument(
        "--insecure-registry",
        action="append",
        default=[],
        metavar="HOST[:PORT]",
        help="allow plain HTTP for this registry (loopback registries always may)",
    )


def _store():
    from executors.images.store import ImageStore

    return ImageStore()


def _pull(args: argparse.Namespace) -> int:
    from executors.images.progress import PlainProgress, RichProgress
    from executors.images.pull import mirrors_from_env, pull_image
    from executors.images.registry import RequestCounter

    counter = RequestCounter()
    started = time.perf_counter()
    options = dict(
        policy=args.pull_policy,
        mirrors=tuple(args.registry_mirror) or mirrors_from_env(),
        insecure=tuple(args.insecure_registry),
        platform=args.platform,
        counter=counter,
    )
    if sys.stdout.isatty():
        with RichProgress() as progress:
            image = pull_image(_store(), args.reference, progress=progress, **options)
    else:
        image = pull_image(_store(), args.reference, progress=PlainProgress(), **options)
    elapsed = time.perf_counter() - started
    print(f"{image.reference}@{image.digest}")
    print(f"{len(image.layer_dirs)} layers, {counter.count} requests, {elapsed:.2f} s")
    return 0


def _ls(args: argparse.Namespace) -> int:
    from executors.images.progress import human_bytes

    store = _store()
    records = {record.manifest_digest: record for record in store.records()}
    rows = []
    for reference, digest in sorted(store.references().items()):
        record = records.get(digest)
        if record is None or "@" in reference:
            continue
        rows.append((reference, record))
    tagless = set(records) - {record.manifest_digest for _, record in rows}
    rows += [(f"<none>@{records[d].repo_digest}", records[d]) for d in sorted(tagless)]
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "reference": ref,
                        "digest": record.repo_digest,
                        "manifest_digest": record.manifest_digest,
                        "platform": record.platform,
                        "size": record.size,
                        "layers": len(record.layers),
                        "created": record.created,
                    }
                    for ref, record in rows
                ],
                indent=2,
            )
        )
        return 0
    print(f"{'REFERENCE':60} {'DIGEST':19} {'PLATFORM':13} {'LAYERS':>6} {'SIZE':>10}")
    for ref, record in rows:
        digest = record.repo_digest.split(":", 1)[1][:12]
        print(
            f"{ref:60} sha256:{digest:12} {record.platform:13} {len(record.layers):>6} "
            f"{human_bytes(record.size):>10}"
        )
    return 0


def _inspect(args: argparse.Namespace) -> int:
    from executors.images.errors import ImagePullError
    from executors.images.reference import parse_reference

    store = _store()
    ref = parse_reference(args.reference)
    digest = store.resolve(ref)
    record = store.record(digest) if digest else None
    if record is None:
        raise ImagePullError(f"image {ref} is not in the store (pyci image pull {ref})")
    document = record.to_json()
    document["reference"] = str(ref)
    document["layer_dirs"] = [str(store.layer_dir(layer.chain_id)) for layer in record.layers]
    print(json.dumps(document, indent=2))
    return 0


def _rm(args: argparse.Namespace) -> int:
    store = _store()
    for reference in args.references:
        for name in store.remove(reference):
            print(f"untagged: {name}")
    return 0


def _prune(args: argparse.Namespace) -> int:
    from executors.images.progress import human_bytes

    store = _store()
    result = store.prune(args.max_size)
    cap = args.max_size if args.max_size is not None else store.max_bytes
    if result.images:
        print(f"evicted {result.images} least recently used images to fit {human_bytes(cap)}")
    print(
        f"deleted {result.blobs} blobs, {result.layers} layers and {result.temp} temp entries, "
        f"freed {human_bytes(result.bytes_freed)}"
    )
    return 0
