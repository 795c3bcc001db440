"""``edgefed site rotate-key``: give a stopped site a new key, handed over by the old one.

The site publishes the rotation (signed by the key every other site pinned) at its next
start; gossip carries it, and the fleet moves its pin to the new key. Tokens signed with
the old key are refused from then on: users log in again.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from edgefed.core.settings import load_settings
from edgefed.services.sites.registry import rotate_key


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="the site's TOML config file")
    parser.add_argument("--data-dir", type=Path, help="the site's data directory")


def run(args: argparse.Namespace) -> int:
    data_dir: Path | None = args.data_dir
    if data_dir is None:
        if args.config is None:
            print("give --data-dir or --config")
            return 2
        data_dir = load_settings(args.config, {}).data_dir
    try:
        rotation = rotate_key(data_dir, now=time.time())
    except (OSError, RuntimeError, ValueError) as exc:
        print(f"cannot rotate the key: {exc}")
        return 1
    print(f"new key {rotation.new_key} (was {rotation.old_key}); start the site to publish it")
    return 0
