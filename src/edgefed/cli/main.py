"""Entry point of the ``edgefed`` command.

Each command's module is imported only when that command runs (or when ``--help``
lists them): ``edgefed site serve`` is a long-lived process on a small box, and the
host agent, the Ansible bundle and ``up`` would cost it memory it never uses.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# Every command, the host agent included (another long-lived process): httpx imports
# its command-line client (rich, click, pygments, ≈ 5 MiB) whenever those happen to be
# installed; a None entry makes that optional import fail, as in an install without
# them. cli/serve.py does the same for whoever imports it directly.
sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]

from edgefed import __version__  # noqa: E402 - after the line above

# command → (help, module whose add_arguments(parser) fills it in)
COMMANDS: dict[str, tuple[str, str]] = {
    "site": ("run or manage one site", ""),  # add_site_arguments below
    "host": ("the site's hosts inventory, host agent, provisioning", "edgefed.cli.host"),
    "fleet": ("fleet status (aggregated) and remote control", "edgefed.cli.fleet"),
    "alarms": ("alarms of a scope of sites; raise, clear", "edgefed.cli.alarms"),
    "sync": ("metadata sync: marks, registration, progress", "edgefed.cli.sync"),
    "up": ("start a local fleet (Berlin, Denver, Paris)", "edgefed.cli.up"),
}


# ``edgefed site`` subcommands; one named on the command line is the only one built.
SITE_COMMANDS = ("serve", "rotate-key", "drain", "undrain")


def add_site_arguments(parser: argparse.ArgumentParser, wanted: str | None = None) -> None:
    """``edgefed site …``; with ``wanted``, only that subcommand. ``site serve`` is the
    long-lived process: drain's module (the operator client, and through it the hosts
    command's) would cost it ≈ 0.4 MiB it never uses (docs/bench.md, ``footprint``)."""
    site_sub = parser.add_subparsers(dest="site_command", required=True)
    if wanted in (None, "serve"):
        from edgefed.cli import serve

        serve_p = site_sub.add_parser("serve", help="run one site in this process")
        serve.add_arguments(serve_p)
        serve_p.set_defaults(func=serve.run)
    if wanted in (None, "rotate-key"):
        from edgefed.cli import site_keys

        rotate_p = site_sub.add_parser(
            "rotate-key", help="give a stopped site a new key, signed over by the old one"
        )
        site_keys.add_arguments(rotate_p)
        rotate_p.set_defaults(func=site_keys.run)
    if wanted in (None, "drain", "undrain"):
        from edgefed.cli import drain

        drain.add_arguments(site_sub)  # both: drain and undrain


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser; with ``argv``, only the command it names gets its arguments (the
    others are listed by name and help only). Without, every command is complete."""
    wanted = next((a for a in argv if not a.startswith("-")), None) if argv is not None else None
    parser = argparse.ArgumentParser(prog="edgefed", description="edge cloud control plane")
    parser.add_argument("--version", action="version", version=f"edgefed {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (help_text, module_name) in COMMANDS.items():
        command = sub.add_parser(name, help=help_text)
        if argv is not None and name != wanted:
            continue
        if not module_name:
            named = [a for a in argv if not a.startswith("-")][1:2] if argv is not None else []
            add_site_arguments(command, named[0] if named and named[0] in SITE_COMMANDS else None)
            continue
        module = importlib.import_module(module_name)
        module.add_arguments(command)
        if name == "up":
            command.set_defaults(func=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
