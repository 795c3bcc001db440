"""``python -m edgefed.guest_image [--out DIR] [--force]``: build the tiny guest (cached)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from edgefed.guest_image import BuildError, build_guest_image

DEFAULT_OUT = Path(".cache/guest-image")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edgefed.guest_image", description=__doc__)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"default {DEFAULT_OUT}")
    parser.add_argument("--force", action="store_true", help="rebuild from current packages")
    args = parser.parse_args(argv)
    started = time.monotonic()
    try:
        image = build_guest_image(args.out.resolve(), force=args.force)
    except BuildError as exc:
        print(f"guest image: {exc}", file=sys.stderr)
        return 1
    took = time.monotonic() - started
    manifest = image.manifest
    sizes = {name: facts["size"] for name, facts in manifest["files"].items()}
    print(
        f"guest image {manifest['key']} in {image.directory} ({took:.2f} s): "
        f"{manifest['kernel_package']}, {manifest['busybox_package']}, {json.dumps(sizes)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
