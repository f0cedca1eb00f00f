"""The ``flaskserve`` command: turn flags into settings, then delegate."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click
import orjson

from flaskserve import __version__
from flaskserve.errors import FlaskserveError
from flaskserve.security.commands import keys_command, self_signed_directory, serve_security_options

if TYPE_CHECKING:
    from flaskserve.security.tls import ServerTLS
    from flaskserve.settings import Settings, SettingsSource

T = TypeVar("T")
Command = TypeVar("Command", bound=Callable[..., Any])

log = logging.getLogger("flaskserve.cli")

_config_option = click.option(
    "--config",
    "config_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="TOML config file (defaults < file < FLASKSERVE_* env < flags).",
)


def _model_options(command: Command) -> Command:
    options = [
        click.option(
            "--name",
            "model_name",
            help="Model name for a single file (default: the file's stem; model.* takes its folder's name).",
        ),
        click.option(
            "--allow-pickle",
            is_flag=True,
            default=None,
            help="Trust pickle/joblib files under MODEL_PATH: they run code when they load.",
        ),
        click.option(
            "--allow-code",
            is_flag=True,
            default=None,
            help="Trust Python model files (model.py) under MODEL_PATH: they run code when they load.",
        ),
        click.option(
            "--trust-type",
            "skops_trusted_types",
            multiple=True,
            help="A type skops may build beyond its safe set, e.g. _operator.neg (repeatable).",
        ),
        _config_option,
        click.argument("model_path", type=click.Path(path_type=Path), required=False),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _settings(config_file: Path | None, **flags: Any) -> Settings:
    return _settings_source(config_file, **flags).load()


def _settings_source(config_file: Path | None, **flags: Any) -> SettingsSource:
    """The config file and the flags given, from which the settings are read (again on ``HUP``)."""
    from flaskserve.settings import SettingsSource

    if not flags.get("skops_trusted_types"):
        flags.pop("skops_trusted_types", None)
    else:
        flags["skops_trusted_types"] = list(flags["skops_trusted_types"])
    return SettingsSource(config_file, flags)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="flaskserve")
def main() -> None:
    """Serve trained models over a fast, secure, standard HTTP API."""


@main.command()
@_model_options
@click.option("--host", default=None, help="Address to bind (default 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port to bind (default 5000).")
@click.option(
    "--grpc-port",
    type=click.IntRange(1, 65535),
    default=None,
    help="Also serve the Open Inference Protocol over gRPC on this port (needs flaskserve[grpc]).",
)
@click.option(
    "--workers", type=click.IntRange(min=1), default=None, help="Worker processes (default: CPU count)."
)
@click.option("--threads", type=click.IntRange(min=1), default=None, help="Threads per worker.")
@click.option("--default-model", default=None, help="The model /predict serves when several are loaded.")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default=None)
@click.option("--log-format", type=click.Choice(["json", "text", "auto"]), default=None)
@click.option(
    "--max-batch-size",
    type=click.IntRange(min=0),
    default=None,
    help="Rows one batched model call may merge (0 or 1: no batching); models may override it.",
)
@click.option(
    "--max-batch-delay",
    "max_batch_delay_ms",
    type=click.FloatRange(min=0),
    default=None,
    help="Milliseconds a request may wait for others to join its batch.",
)
@click.option(
    "--cache-size",
    type=click.IntRange(min=0),
    default=None,
    help="Prediction cache entries per model version (0: no cache); models may override it.",
)
@click.option(
    "--cache-storage",
    default=None,
    help="Share cached predictions between workers and replicas: redis://HOST:PORT/DB (default memory://).",
)
@click.option(
    "--server",
    type=click.Choice(["gunicorn", "granian"]),
    default=None,
    help="WSGI server to run (default gunicorn; granian needs 'pip install flaskserve[granian]').",
)
@click.option(
    "--watch/--no-watch",
    default=None,
    help="Follow MODEL_PATH: serve new and changed versions, retire removed ones (docs/operations.md).",
)
@click.option(
    "--watch-interval",
    "watch_interval_s",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Seconds between two looks at the repository and the key file (default 2).",
)
@click.option(
    "--inference-log",
    default=None,
    help="Write each prediction to postgresql://..., file://DIR or http(s):// (CloudEvents).",
)
@serve_security_options
def serve(config_file: Path | None, tls_self_signed_flag: bool, **flags: Any) -> None:
    """Serve MODEL_PATH (a model file or a repository folder) under gunicorn (or granian)."""
    from flaskserve.observability.logging import configure_logging
    from flaskserve.observability.multiprocess import metrics_directory
    from flaskserve.serving.rundir import run_directory

    flags["cors_origins"] = list(flags["cors_origins"]) or None
    source = _settings_source(config_file, **flags)

    def read_settings() -> Settings:
        """The settings as given, with the self-signed certificate's directory the flag asks for."""
        settings = source.load()
        tls_dir = self_signed_directory(tls_self_signed_flag, settings.tls_self_signed)
        if tls_dir != settings.tls_self_signed:
            settings = settings.model_copy(update={"tls_self_signed": tls_dir})
        return settings

    settings = _fail_cleanly(read_settings)
    configure_logging(settings.log_level, settings.log_format, access_sample=settings.log_access_sample)
    # Metrics keep their values in per-process files (summed over workers) when they are
    # created inside the metrics directory's block, so it is entered before the app is built. The
    # run directory carries model loads and unloads from the worker that made them to the others.
    with metrics_directory() as metrics_dir, run_directory() as run_dir:
        from flaskserve.app import create_app, reconfigure
        from flaskserve.observability.metrics import Metrics

        metrics = Metrics(multiprocess_dir=str(metrics_dir))
        protocols, grpc_starter = None, None
        if settings.grpc_port is not None:
            from flaskserve.rpc import grpc_parts

            protocols, grpc_starter = _fail_cleanly(lambda: grpc_parts(settings))
        # The app first: it refuses an exposed server without keys before any certificate is made.
        app = _fail_cleanly(
            lambda: create_app(settings, metrics=metrics, run_dir=run_dir, protocols=protocols)
        )
        # Only now: a server that cannot start says why in one line, not after a page of settings.
        log.info("settings in force", extra={"settings": settings.describe()})
        tls = _server_tls(settings)
        # Called in each worker after the fork: the gRPC runtime must not start before it.
        in_worker = grpc_starter(app, tls) if grpc_starter is not None else None
        # Called in the master on HUP, before it forks the workers that replace the old ones.
        on_reload = partial(reconfigure, app, read_settings)
        if settings.server == "granian":
            from flaskserve.serving import granian

            server = _fail_cleanly(lambda: granian.build_server(settings, tls))
            granian.serve(server, app, in_worker=in_worker, on_reload=on_reload)
            return
        from flaskserve.serving.gunicorn import serve as run_server

        run_server(
            app,
            settings,
            in_worker=in_worker,
            on_reload=on_reload,
            **(dict(tls.options) if tls is not None else {}),
        )


@main.command()
@_model_options
def check(config_file: Path | None, **flags: Any) -> None:
    """Load MODEL_PATH, print each model's signature and the settings in force, and exit."""
    from flaskserve.models.loaders import default_loaders
    from flaskserve.models.loading import load_registry

    settings = _fail_cleanly(lambda: _settings(config_file, **flags))
    with _command_logging(settings):
        registry = _fail_cleanly(lambda: load_registry(settings, default_loaders()))
    report = {
        "models": [
            {
                "name": m.name,
                "version": m.version,
                "platform": m.platform,
                "sha256": m.sha256,
                "signature": m.signature.describe(),
            }
            for m in registry.models()
        ],
        "settings": settings.describe(),
    }
    click.echo(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())


@main.command()
@click.argument("source", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("target", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Overwrite TARGET if it exists.")
def convert(source: Path, target: Path, force: bool) -> None:
    """Convert a pickle/joblib model SOURCE into a skops file TARGET.

    This loads SOURCE, which runs any code the pickle holds: convert only files you trust.
    """
    from flaskserve.models.loaders.pickled import PickleLoader
    from flaskserve.models.trust import DEFAULT_SKOPS_TRUSTED_TYPES, ModelFile, TrustPolicy

    if target.suffix.lower() != ".skops":
        raise click.UsageError("TARGET must end in .skops")
    if source.suffix.lower() == ".skops":
        _stop(f"'{source}' is already a skops file: serve it as it is (flaskserve serve {source})")
    if source.suffix.lower() not in PickleLoader.suffixes:
        _stop(
            f"'{source}' is not a pickle or joblib file ({', '.join(PickleLoader.suffixes)}); "
            "convert turns those into skops files"
        )
    if target.exists() and not force:
        _stop(f"'{target}' already exists; pass --force to overwrite it")
    loaded = _fail_cleanly(
        lambda: PickleLoader().load(
            ModelFile.read(source), display_name=source.name, trust=TrustPolicy(allow_pickle=True)
        )
    )
    import skops.io as sio

    sio.dump(loaded.model, target)
    untrusted = [t for t in sio.get_untrusted_types(file=target) if t not in DEFAULT_SKOPS_TRUSTED_TYPES]
    click.echo(f"wrote {target}")
    if untrusted:
        flags = " ".join(f"--trust-type {t}" for t in untrusted)
        click.echo(f"it holds types outside skops' safe set; to serve it, trust them: {flags}")


@main.command()
@click.argument("source", type=click.Path(exists=True, path_type=Path))
@click.argument("model_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--version", "number", type=click.IntRange(min=1), default=None, help="Default: the newest + 1."
)
def publish(source: Path, model_dir: Path, number: int | None) -> None:
    """Publish SOURCE (a model file) as the next version of MODEL_DIR (REPOSITORY/NAME), atomically."""
    from flaskserve.lifecycle.publish import publish as publish_version
    from flaskserve.models.loaders import default_loaders

    target = _fail_cleanly(lambda: publish_version(source, model_dir, default_loaders(), version=number))
    click.echo(f"published {target}")


@main.command()
@click.argument("model_dir", type=click.Path(file_okay=False, path_type=Path))
@click.argument("version")
def pin(model_dir: Path, version: str) -> None:
    """Serve VERSION of MODEL_DIR (REPOSITORY/NAME) alone: a rollback that survives restarts.

    Writes pin = "VERSION" under [versions] in the model's model-settings.toml, atomically;
    a server watching the repository serves it from its next look.
    """
    from flaskserve.lifecycle.pinning import pin as write_pin
    from flaskserve.models.loaders import default_loaders

    number = _fail_cleanly(lambda: write_pin(model_dir, version, default_loaders()))
    click.echo(f"pinned {model_dir.name} to version {number}")


@main.command()
@click.argument("model_dir", type=click.Path(file_okay=False, path_type=Path))
def unpin(model_dir: Path) -> None:
    """Remove the pin of MODEL_DIR (REPOSITORY/NAME): its version policy chooses again."""
    from flaskserve.lifecycle.pinning import unpin as remove_pin

    if _fail_cleanly(lambda: remove_pin(model_dir)):
        click.echo(f"unpinned {model_dir.name}")
    else:
        click.echo(f"{model_dir.name} was not pinned; nothing changed")


@main.command()
@_model_options
@click.option(
    "--data",
    "data_file",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Training data: a CSV file, or Parquet (needs pyarrow), with a column per feature.",
)
def profile(config_file: Path | None, data_file: Path, **flags: Any) -> None:
    """Write the reference profile of the model file MODEL_PATH (reference.json beside it), for drift."""
    from flaskserve.models.loaders import default_loaders
    from flaskserve.models.loading import load_registry
    from flaskserve.observability.drift.profiling import profile_model, read_table

    settings = _fail_cleanly(lambda: _settings(config_file, **flags))
    with _command_logging(settings):
        registry = _fail_cleanly(lambda: load_registry(settings, default_loaders()))
    models = registry.models()
    if len(models) != 1:
        _stop(
            f"MODEL_PATH holds {len(models)} model versions; name the one model file the data trained, "
            "e.g. models/NAME/VERSION/model.skops"
        )
    table = _fail_cleanly(lambda: read_table(data_file))
    reference = _fail_cleanly(partial(profile_model, models[0], table))
    target = reference.write_beside(models[0].source)
    click.echo(f"wrote {target} ({models[0].name} {models[0].version}, {reference.rows} rows)")


@main.command()
@click.option(
    "--dir", "directory", type=click.Path(file_okay=False, path_type=Path), default=Path("demo-models")
)
def demo(directory: Path) -> None:
    """Train the demo model (linear regression on x and y) into a repository folder."""
    from flaskserve.demo import train_demo_model

    root = train_demo_model(directory)
    click.echo(f"trained the demo model into {root}")


def _server_tls(settings: Settings) -> ServerTLS | None:
    """The TLS in force (None for plain HTTP); prints where a self-signed certificate is."""
    from flaskserve.security.ratelimit import counts_per_worker
    from flaskserve.security.tls import server_tls
    from flaskserve.serving.gunicorn import default_workers

    workers = settings.workers or default_workers()
    if counts_per_worker(settings, workers):
        log.warning(
            f"rate limits are counted in memory by each of the {workers} workers alone, so a client "
            f"may make up to {workers} times the limit; use --rate-limit-storage redis://HOST:PORT/DB "
            "to count across workers and replicas"
        )
    tls = _fail_cleanly(
        lambda: server_tls(
            certfile=settings.tls_certfile,
            keyfile=settings.tls_keyfile,
            ca_certs=settings.tls_ca_certs,
            self_signed_dir=settings.tls_self_signed,
        )
    )
    if tls is None:
        return None
    if tls.self_signed is not None:
        click.echo(
            f"serving HTTPS with a self-signed certificate for localhost: {tls.self_signed.certfile}\n"
            f"SHA-256 fingerprint: {tls.self_signed.sha256_fingerprint}\n"
            f"clients can trust it with e.g. curl --cacert {tls.self_signed.certfile}",
            err=True,
        )
    return tls


def _fail_cleanly(action: Callable[[], T]) -> T:
    """``action()``, or its error's message on stderr and the error's exit code."""
    try:
        return action()
    except FlaskserveError as error:
        _stop(error.message, error.exit_code)


def _stop(message: str, exit_code: int = 2) -> NoReturn:
    """End the command with one line on stderr, the way every error of the tree ends one."""
    click.echo(f"flaskserve: {message}", err=True)
    sys.exit(exit_code)


@contextmanager
def _command_logging(settings: Settings) -> Iterator[None]:
    """Show the warnings a one-shot command's loading logs in the configured format, for its duration.

    Without a handler, Python would print such a record as its bare message ("model refused"),
    without the model, version and digest that make it worth reading.
    """
    from flaskserve.observability.logging import make_formatter

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(make_formatter(settings.log_format, sys.stderr))
    handler.setLevel(max(logging.WARNING, logging.getLevelName(settings.log_level.upper())))
    own = logging.getLogger("flaskserve")
    own.addHandler(handler)
    try:
        yield
    finally:
        own.removeHandler(handler)


main.add_command(keys_command)


if __name__ == "__main__":  # pragma: no cover
    main()
