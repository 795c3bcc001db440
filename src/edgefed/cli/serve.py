"""``edgefed site serve``: run one site in this process.

The CLI binds the listening socket itself, so ``--port 0`` works: the real port is
known before the app starts and goes into the catalog. When the site is ready it
prints one line, ``EDGEFED READY name=… url=…``, which tools and tests wait for. With
the qemu driver it then starts a host agent for this machine (cli/local_agent.py),
and stops it (leaving the guests running) when it stops.

With ``tls`` (``--tls``) the one port serves HTTPS: the context, built here before
uvicorn starts (``api.tls.server_context``: the site-key certificate for other sites,
the operator's for clients), is handed to uvicorn through ``ssl_context_factory``.

A site's process creates its files private (umask 077): the database and its WAL,
keys, certificates, image blobs are 0600, its directories 0700 (docs/tls.md).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib.util
import linecache
import logging
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import types
import typing
from pathlib import Path
from typing import TYPE_CHECKING, Any

# httpx imports its command-line client (rich, click, pygments) whenever
# those happen to be installed, as in a development environment. A site never runs it;
# a None entry makes that optional import fail, which httpx handles exactly as in an
# install without them. This module is the first the ``edgefed`` command imports.
sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
# FastAPI asks, for every route's annotations, whether they are pydantic v1 models, by
# importing ``pydantic.v1``; edgefed has none. Blocked, FastAPI answers "no"
# as it does with a pydantic that no longer ships v1.
sys.modules.setdefault("pydantic.v1", None)  # type: ignore[arg-type]


def defer_model_builds() -> None:
    """pydantic models built on first use rather than when their class is made.

    pydantic builds a model's validator and serializer with its class unless the model
    defers it (``defer_build``). A site makes hundreds at import, FastAPI's OpenAPI
    document's and edgefed's request bodies, and an idle site uses a few: deferred, it
    keeps 2 MiB less (docs/bench.md, ``footprint``). A model validates and serializes
    the same either way (a class that cannot be built is built anew, and fails, at each
    use in both). pydantic keeps the default in a private table: should it move, models
    are built at once as before, and tests/unit/test_site_footprint.py fails.
    """
    from pydantic._internal import _config

    defaults = getattr(_config, "config_defaults", None)
    if isinstance(defaults, dict) and defaults.get("defer_build") is False:
        defaults["defer_build"] = True


defer_model_builds()  # before FastAPI (below) makes its models

from edgefed.api.context import SiteContext  # noqa: E402 - after the line above
from edgefed.core.errors import EdgefedError  # noqa: E402
from edgefed.core.heap import one_heap, release_free_heap  # noqa: E402
from edgefed.core.settings import SiteSettings, load_settings  # noqa: E402
from edgefed.store.migrate import sqlite_file, sqlite_needs_upgrade  # noqa: E402

if TYPE_CHECKING:
    from uvicorn.config import Config
    from uvicorn.server import Server

READY_PREFIX = "EDGEFED READY"
log = logging.getLogger("edgefed.serve")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="TOML config file")
    parser.add_argument("--name", help="site name, e.g. Berlin")
    parser.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port to listen on (0 picks a free one)")
    parser.add_argument("--public-url", help="URL other sites and clients use")
    parser.add_argument("--data-dir", type=Path, help="where the site keeps its state")
    parser.add_argument("--database-url", help="SQLAlchemy URL (default: SQLite in data dir)")
    parser.add_argument(
        "--admin-password",
        help="bootstrap admin password (or EDGEFED_ADMIN_PASSWORD)",
    )
    parser.add_argument("--log-level", help="debug, info, warning, error")
    parser.add_argument(
        "--compute-driver",
        choices=("fake", "qemu"),
        help="fake (simulated guests) or qemu (real guests through host agents)",
    )
    parser.add_argument(
        "--tls",
        action="store_true",
        default=None,
        help="serve HTTPS; other sites pin this site's key (setting: tls = true)",
    )
    parser.add_argument("--tls-cert-file", help="the certificate clients see (PEM)")
    parser.add_argument("--tls-key-file", help="its private key (PEM), if not in the cert file")


def settings_from_args(args: argparse.Namespace) -> SiteSettings:
    overrides: dict[str, Any] = {
        "name": args.name,
        "host": args.host,
        "port": args.port,
        "public_url": args.public_url,
        "data_dir": args.data_dir,
        "database_url": args.database_url,
        "admin_password": args.admin_password or os.environ.get("EDGEFED_ADMIN_PASSWORD"),
        "log_level": args.log_level,
        "compute_driver": getattr(args, "compute_driver", None),
        "tls": args.tls,
        "tls_cert_file": args.tls_cert_file,
        "tls_key_file": args.tls_key_file,
    }
    return load_settings(args.config, overrides)


def private_data_dir(data_dir: Path) -> None:
    """The data directory 0700 and its database files 0600, also when an older version
    (or an operator) made them readable to others."""
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(data_dir, 0o700)
    for name in ("site.db", "site.db-wal", "site.db-shm", "site.toml"):
        path = data_dir / name
        if path.exists():
            os.chmod(path, 0o600)


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def migrate_apart(settings: SiteSettings) -> None:
    """Upgrade a SQLite database below the head in a process of its own (store/migrate.py
    says why); should that fail, the site's own start migrates and says what is wrong."""
    path = sqlite_file(settings.effective_database_url)
    if path is None or not sqlite_needs_upgrade(path):
        return
    done = subprocess.run(  # noqa: S603 - this interpreter, our module, the site's file
        [sys.executable, "-m", "edgefed.store.migrate", f"sqlite:///{path}"], check=False
    )
    if done.returncode != 0:
        log.warning("migrating apart failed (%d); migrating in the site", done.returncode)


def forget_startup_caches(ctx: SiteContext) -> None:
    """Drop what starting cached and serving does not use again: 0.4 MiB of an idle
    site, 0.6 MiB with the qemu driver (docs/bench.md, ``footprint``).

    - the SQL compiled for the migrations check, the bootstrap and the services' starts
      (SQLAlchemy keeps up to 500 statements, ≈ 30 KiB each): a statement that serving
      runs again is compiled again once;
    - the stubs ``typing.overload`` registers for ``get_overloads``, which nothing in a
      site calls (SQLAlchemy's and pydantic's hundreds);
    - ``re``'s cache of the patterns imports compiled, and the source lines imports
      read (anyio reads its own to build its lazy imports), both read again if needed.
    """
    ctx.store.engine.clear_compiled_cache()
    typing.clear_overloads()
    re.purge()
    linecache.clearcache()


def announce(ctx: SiteContext) -> None:
    # Everything built while starting (modules, routes, compiled statements, settings:
    # over a hundred thousand objects) lives as long as the process. Frozen, the
    # collector no longer walks it: a full collection in a serving site took long enough
    # to stall every request then in flight (and a fan-out waits for its slowest site;
    # figures in docs/bench.md). What starting cached for itself and left for the
    # collector goes first, and the C heap it freed is handed back to the system (glibc
    # keeps it otherwise): an idle site's resident memory is its footprint on a small box.
    forget_startup_caches(ctx)
    gc.collect()
    gc.freeze()
    release_free_heap()
    scheme = "https" if ctx.settings.tls else "http"
    listen = f"{scheme}://{ctx.settings.host}:{ctx.settings.port}"
    print(f"{READY_PREFIX} name={ctx.name} url={ctx.public_url} listen={listen}", flush=True)


def uvicorn_server() -> tuple[type[Config], type[Server]]:
    """uvicorn's ``Config`` and ``Server``, without its package ``__init__``.

    That ``__init__`` imports uvicorn's command line: click, the reloaders with
    watchfiles and multiprocessing, which a site never runs. The
    package is registered without executing it (its submodules import normally), unless
    something imported the whole of uvicorn already.
    """
    if "uvicorn" not in sys.modules:
        spec = importlib.util.find_spec("uvicorn")
        if spec is not None and spec.submodule_search_locations is not None:
            package = types.ModuleType("uvicorn")
            package.__spec__ = spec
            package.__path__ = list(spec.submodule_search_locations)
            package.__file__ = spec.origin
            sys.modules["uvicorn"] = package
    from uvicorn.config import Config
    from uvicorn.server import Server

    package = sys.modules["uvicorn"]
    if not hasattr(package, "Config"):  # ``from uvicorn import Config`` (its lifespan)
        package.Config = Config  # type: ignore[attr-defined]
        package.Server = Server  # type: ignore[attr-defined]
    return Config, Server


async def serve(
    settings: SiteSettings, sock: socket.socket, tls: ssl.SSLContext | None = None
) -> None:
    from edgefed.app import create_app

    config_class, server_class = uvicorn_server()
    ready = asyncio.Event()

    def on_ready(ctx: SiteContext) -> None:
        announce(ctx)
        ready.set()

    app = create_app(settings, on_ready=on_ready)
    # uvicorn builds its own context from file names; ours (two certificates, chosen by
    # server name) goes in through its factory hook.
    ssl_options: dict[str, Any] = {}
    if tls is not None:
        ssl_options["ssl_context_factory"] = lambda _config, _default: tls
    config = config_class(
        app,
        lifespan="on",
        log_level=settings.log_level,
        access_log=False,
        loop="uvloop",
        http="httptools",
        ws="none",  # no websocket routes: do not import a websockets implementation
        timeout_graceful_shutdown=5,
        # Longer than clients keep idle connections pooled: a server closing an idle
        # connection as a client reuses it makes the client fail (RemoteDisconnected).
        timeout_keep_alive=75,
        server_header=False,
        proxy_headers=False,  # sites are reached directly; no X-Forwarded-For to trust
        **ssl_options,
    )
    server = server_class(config)
    agent = None
    if settings.runs_local_agent:
        from edgefed.cli.local_agent import LocalAgent

        # The listening socket is inheritable and uvloop's spawn does not close it: an
        # agent holding it would keep a restarted site from listening.
        sock.set_inheritable(False)
        agent = LocalAgent(settings)
        starter = asyncio.create_task(ready.wait())
        starter.add_done_callback(lambda _: agent.start())
        # uvicorn raises the SIGTERM it caught again once it has shut down, under the
        # handler it found: the default one would end the process before the agent is
        # stopped below. A handler that does nothing lets the cleanup run; the process
        # then ends as a stopped site does, with status 0.
        signal.signal(signal.SIGTERM, lambda _sig, _frame: None)
    try:
        await server.serve(sockets=[sock])
    finally:
        if agent is not None:
            # Closed first: the agent's last calls are refused at once, not left waiting.
            sock.close()
            starter.cancel()
            await agent.stop()
            log.info("stopped the local host agent")
    if not server.started:
        raise SystemExit(1)


def run(args: argparse.Namespace) -> int:
    try:
        settings = settings_from_args(args)
    except EdgefedError as exc:
        print(f"edgefed: {exc.message}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level.upper(),
        format=f"%(asctime)s {settings.name} %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)
    os.umask(0o077)
    one_heap()  # before any thread: what they free can go back (core/heap.py)
    try:
        private_data_dir(settings.data_dir)
    except OSError as exc:
        print(f"edgefed: cannot use data directory {settings.data_dir}: {exc}", file=sys.stderr)
        return 2
    migrate_apart(settings)
    if logging.getLogger().level > logging.DEBUG:
        # httpx logs every request at INFO: a site's gossip and health checks are a few
        # calls a second, which buried `edgefed up`'s banner. Failures are ours to log.
        logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        sock = bind(settings.host, settings.port)
    except OSError as exc:
        print(f"edgefed: cannot listen on {settings.host}:{settings.port}: {exc}", file=sys.stderr)
        return 2
    settings = settings.with_port(sock.getsockname()[1])
    tls = None
    if settings.tls:
        from edgefed.api.tls import server_context

        try:
            tls = server_context(settings)
        except (OSError, ssl.SSLError, ValueError) as exc:
            print(f"edgefed: cannot set up TLS: {exc}", file=sys.stderr)
            sock.close()
            return 2
    try:
        import uvloop

        uvloop.run(serve(settings, sock, tls))
    except KeyboardInterrupt:
        pass
    return 0
