"""The line-up: how each server in the comparison is started, with which settings.

A :class:`Server` is only a description (command, environment, port, how to probe it); the
processes are run by :mod:`process`.  Each builder below writes whatever configuration files its
server needs into the run's scratch folder, so the commands recorded in the report are exactly
the ones that ran.

Every flaskserve flag the benchmark passes is named in this module's ``FLASKSERVE_*`` constants
and nowhere else.  The optional groups (batching, cache, granian) are probed against ``flaskserve
serve --help``, and summed up in :class:`Capabilities`, so that a build without them still runs
the rest of the line-up.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from process import free_port

from models import BenchModel

# The flags every flaskserve run needs, the ones that turn batching on or off, the one that
# sizes the response cache, and the one that picks granian over gunicorn.  "Off" is passed
# explicitly (batch size 1, cache size 0) so that a change of defaults can never turn a feature
# on behind an "off" row.
FLASKSERVE_REQUIRED_FLAGS = ("--host", "--port", "--workers", "--threads", "--allow-pickle")
FLASKSERVE_BATCHING_FLAGS = ("--max-batch-size", "--max-batch-delay")
FLASKSERVE_CACHE_FLAGS = ("--cache-size",)
FLASKSERVE_GRANIAN_FLAGS = ("--server",)

MLSERVER_SKLEARN = "mlserver_sklearn.SKLearnModel"


@dataclass(frozen=True)
class Tuning:
    """Settings shared across servers so that the comparison is like for like."""

    workers: int
    threads: int
    max_batch_size: int
    max_batch_delay_ms: float
    cache_size: int


@dataclass(frozen=True)
class Layout:
    """Where things are: the repository, its virtualenvs, and this run's scratch folder."""

    repo: Path
    venv_bin: Path
    peer_venvs: Path
    """The folder with one virtualenv per peer server (see ``peer_envs``)."""
    scratch: Path

    def peer_bin(self, peer: str) -> Path:
        """The ``bin`` folder of ``peer``'s own virtualenv."""
        return self.peer_venvs / peer / "bin"

    @property
    def peers(self) -> Path:
        return self.repo / "bench" / "peers"

    @property
    def logs(self) -> Path:
        """Where each server's output goes, one ``<key>.log`` per server."""
        return self.scratch / "logs"

    def display(self, text: str) -> str:
        """``text`` with machine-specific paths replaced, fit for the committed report."""
        text = text.replace(str(self.scratch), "$BENCH_TMP")
        text = text.replace(str(self.peer_venvs), "$BENCH_PEERS")
        text = text.replace(str(self.repo) + "/", "")
        # The environment the run used, wherever it lives, is the one `make bench` calls .venv.
        return text.replace(str(self.venv_bin.parent) + "/", ".venv/")


@dataclass(frozen=True)
class Server:
    """How to start one server and how to talk to it."""

    key: str
    name: str
    settings: str
    argv: tuple[str, ...]
    port: int
    cwd: Path
    predict_path: str
    ready_path: str | None
    env: Mapping[str, str] = field(default_factory=dict)
    protocol: str = "named"
    """The shape of the benchmark row this server takes: ``named`` (``{"x": 1, "y": 2}``), ``v2``
    (an Open Inference Protocol tensor) or ``rows`` (``{"rows": [[1, 2]]}``, BentoML's array)."""
    answer_key: str | None = "prediction"
    """The key its JSON answer holds the prediction under; None when the answer is a bare list."""

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self, layout: Layout) -> str:
        """The command line as a shell would take it, environment first."""
        words = [f"{name}={value}" for name, value in self.env.items()] + list(self.argv)
        return layout.display(shlex.join(words))

    def body_for(self, model: BenchModel | None) -> bytes:
        """The request body this server expects for ``model``'s benchmark row."""
        if model is None:
            return b'{"x": 1, "y": 2}'
        payload: Any = model.named_row()
        if self.protocol == "v2":
            payload = model.v2_body()
        elif self.protocol == "rows":
            payload = {"rows": [list(model.row)]}
        return json.dumps(payload).encode()


def flaskserve_flags(flaskserve: Path) -> set[str]:
    """The long options ``flaskserve serve --help`` lists; empty if the command is missing."""
    try:
        result = subprocess.run(
            [str(flaskserve), "serve", "--help"], capture_output=True, text=True, timeout=60, check=False
        )
    except OSError:
        return set()
    if result.returncode != 0:
        return set()
    return {word.rstrip(",=") for word in result.stdout.split() if word.startswith("--")}


@dataclass(frozen=True)
class Capabilities:
    """What the installed flaskserve can be asked to do, read from the flags its ``serve`` lists.

    The benchmark also measures builds that predate a feature: each row that needs one asks
    here, and the report shows the row as absent, with the reason, instead of failing the run.
    """

    flags: frozenset[str]
    granian_installed: bool

    @classmethod
    def probe(cls, flaskserve: Path, granian: Path) -> Capabilities:
        """Asks the ``flaskserve`` command for its flags and looks for the ``granian`` command."""
        return cls(frozenset(flaskserve_flags(flaskserve)), granian.exists())

    def _has(self, group: tuple[str, ...]) -> bool:
        return all(flag in self.flags for flag in group)

    @property
    def serve(self) -> bool:
        """``flaskserve serve`` exists and takes every flag a run needs."""
        return self._has(FLASKSERVE_REQUIRED_FLAGS)

    @property
    def missing_required(self) -> list[str]:
        """The flags a run needs that ``flaskserve serve`` does not list."""
        return [flag for flag in FLASKSERVE_REQUIRED_FLAGS if flag not in self.flags]

    @property
    def batching(self) -> bool:
        return self._has(FLASKSERVE_BATCHING_FLAGS)

    @property
    def cache(self) -> bool:
        return self._has(FLASKSERVE_CACHE_FLAGS)

    @property
    def granian(self) -> bool:
        """flaskserve can be told to run on granian, and granian is installed to run on."""
        return self._has(FLASKSERVE_GRANIAN_FLAGS) and self.granian_installed


def flaskserve(
    layout: Layout,
    key: str,
    model: BenchModel,
    tuning: Tuning,
    port: int,
    *,
    flags: AbstractSet[str],
    batching: bool = False,
    cache: bool = False,
    workers: int | None = None,
    granian: bool = False,
) -> Server:
    """flaskserve with the shared worker settings; batching and cache are off unless asked for."""
    workers = tuning.workers if workers is None else workers
    argv = [str(layout.venv_bin / "flaskserve"), "serve", str(model.path)]
    argv += ["--host", "127.0.0.1", "--port", str(port)]
    argv += ["--workers", str(workers), "--threads", str(tuning.threads), "--allow-pickle"]
    notes = [f"{'granian' if granian else 'gunicorn'}, {workers} workers, {tuning.threads} threads"]
    if granian:
        argv += ["--server", "granian"]
    if all(flag in flags for flag in FLASKSERVE_BATCHING_FLAGS):
        if batching:
            argv += ["--max-batch-size", str(tuning.max_batch_size)]
            argv += ["--max-batch-delay", f"{tuning.max_batch_delay_ms:g}"]
            notes.append(f"batching {tuning.max_batch_size} rows / {tuning.max_batch_delay_ms:g} ms")
        else:
            argv += ["--max-batch-size", "1", "--max-batch-delay", "0"]
            notes.append("batching off")
    if all(flag in flags for flag in FLASKSERVE_CACHE_FLAGS):
        if cache:
            argv += ["--cache-size", str(tuning.cache_size)]
            notes.append(f"cache {tuning.cache_size} entries")
        else:
            argv += ["--cache-size", "0"]
            notes.append("cache off")
    return Server(
        key=key,
        name="flaskserve",
        settings=", ".join(notes),
        argv=tuple(argv),
        port=port,
        cwd=layout.repo,
        predict_path="/predict",
        ready_path="/v2/health/ready",
    )


def tutorial_dev_server(layout: Layout, key: str, model: BenchModel, port: int) -> Server:
    """The tutorial app run as written: ``python tutorial_app.py``, i.e. ``app.run()``."""
    return Server(
        key=key,
        name="tutorial app",
        settings="app.run() (Flask development server, threaded)",
        argv=(str(layout.venv_bin / "python"), "tutorial_app.py"),
        port=port,
        cwd=layout.peers,
        predict_path="/predict",
        ready_path=None,
        env={
            "BENCH_MODEL": str(model.path),
            "BENCH_FEATURES": ",".join(model.features),
            "BENCH_PORT": str(port),
        },
    )


def _gunicorn_argv(layout: Layout, app: str, port: int, workers: int, threads: int) -> tuple[str, ...]:
    return (
        str(layout.venv_bin / "gunicorn"),
        "--workers",
        str(workers),
        "--threads",
        str(threads),
        "--bind",
        f"127.0.0.1:{port}",
        # gunicorn's control socket has one default path per user, so every other gunicorn on
        # the host (tests, another benchmark) would share it with this one.
        "--no-control-socket",
        app,
    )


def tutorial_gunicorn(
    layout: Layout, key: str, model: BenchModel, tuning: Tuning, port: int, *, workers: int | None = None
) -> Server:
    """The same tutorial app under gunicorn with flaskserve's worker and thread counts."""
    workers = tuning.workers if workers is None else workers
    return Server(
        key=key,
        name="tutorial app",
        settings=f"gunicorn, {workers} workers, {tuning.threads} threads",
        argv=_gunicorn_argv(layout, "tutorial_app:app", port, workers, tuning.threads),
        port=port,
        cwd=layout.peers,
        predict_path="/predict",
        ready_path=None,
        env={"BENCH_MODEL": str(model.path), "BENCH_FEATURES": ",".join(model.features)},
    )


#: The two ceiling apps: WSGI with no framework, and the smallest Flask app (see ``bench/peers``).
HELLO_APPS = {
    "raw": ("hello_app:app", "hello-world WSGI"),
    "flask": ("flask_hello_app:app", "Flask hello-world"),
}


def hello(layout: Layout, key: str, tuning: Tuning, port: int, *, app: str = "raw") -> Server:
    """A no-model app under the same gunicorn settings: the ceiling for a Python server on gunicorn."""
    module, name = HELLO_APPS[app]
    return Server(
        key=key,
        name=name,
        settings=f"gunicorn, {tuning.workers} workers, {tuning.threads} threads, no model",
        argv=_gunicorn_argv(layout, module, port, tuning.workers, tuning.threads),
        port=port,
        cwd=layout.peers,
        predict_path="/",
        ready_path=None,
    )


def hello_granian(layout: Layout, key: str, tuning: Tuning, port: int, *, app: str = "raw") -> Server:
    """A no-model app under granian with the same workers and threads: the ceiling on granian."""
    module, name = HELLO_APPS[app]
    return Server(
        key=key,
        name=name,
        settings=f"granian, {tuning.workers} workers, {tuning.threads} threads, no model",
        argv=(
            str(layout.venv_bin / "granian"),
            "--interface",
            "wsgi",
            "--workers",
            str(tuning.workers),
            "--blocking-threads",
            str(tuning.threads),
            # As flaskserve sets it: as many requests in Python at once as there are threads.
            "--backpressure",
            str(tuning.threads),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-ws",
            module,
        ),
        port=port,
        cwd=layout.peers,
        predict_path="/",
        ready_path=None,
    )


def litserve(
    layout: Layout, key: str, model: BenchModel, tuning: Tuning, port: int, *, batching: bool
) -> Server:
    """LitServe's ``LitServer`` over a ``LitAPI`` (``bench/peers/litserve_app.py``), in its own virtualenv."""
    env = {
        "BENCH_MODEL": str(model.path),
        "BENCH_FEATURES": ",".join(model.features),
        "BENCH_PORT": str(port),
        "BENCH_WORKERS": str(tuning.workers),
    }
    notes = [f"{tuning.workers} workers"]
    if batching:
        env["BENCH_BATCH"] = f"{tuning.max_batch_size},{tuning.max_batch_delay_ms / 1000:g}"
        notes.append(f"batching {tuning.max_batch_size} rows / {tuning.max_batch_delay_ms:g} ms")
    else:
        notes.append("batching off")
    return Server(
        key=key,
        name="LitServe",
        settings=", ".join(notes),
        argv=(str(layout.peer_bin("litserve") / "python"), str(layout.peers / "litserve_app.py")),
        port=port,
        cwd=layout.peers,
        predict_path="/predict",
        ready_path="/health",
        env=env,
    )


def bentoml(
    layout: Layout, key: str, model: BenchModel, tuning: Tuning, port: int, *, batching: bool
) -> Server:
    """BentoML's ``bentoml serve`` of a service class (``bench/peers/bentoml_service.py``).

    The model goes into a BentoML model store of this run's own (``BENTOML_HOME`` in the scratch
    folder) with ``bentoml.sklearn.save_model``, as BentoML's guide does, before the server starts.
    """
    python = str(layout.peer_bin("bentoml") / "python")
    env = {
        "BENTOML_HOME": str(layout.scratch / "bentoml" / key),
        "BENCH_MODEL_NAME": model.name,
        "BENCH_WORKERS": str(tuning.workers),
        "BENTOML_DO_NOT_TRACK": "True",
    }
    service = layout.peers / "bentoml_service.py"
    subprocess.run(
        [python, str(service), str(model.path)], env={**os.environ, **env}, check=True, timeout=300
    )
    notes = [f"{tuning.workers} workers"]
    if batching:
        env["BENCH_BATCH"] = str(tuning.max_batch_size)
        notes.append(f"adaptive batching up to {tuning.max_batch_size} rows")
    else:
        notes.append("batching off")
    return Server(
        key=key,
        name="BentoML",
        settings=", ".join(notes),
        argv=(
            str(layout.peer_bin("bentoml") / "bentoml"),
            "serve",
            "bentoml_service:SklearnModel",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ),
        port=port,
        cwd=layout.peers,
        predict_path="/predict",
        ready_path="/readyz",
        env=env,
        protocol="rows",
        answer_key=None,
    )


def mlserver(
    layout: Layout,
    key: str,
    model: BenchModel,
    port: int,
    *,
    debug: bool | None = None,
    parallel_workers: int | None = None,
    batch: tuple[int, float] | None = None,
) -> Server:
    """MLServer's scikit-learn runtime, from its own virtualenv.

    ``None`` leaves a setting at MLServer's default (debug on, one parallel worker), so the
    "defaults" row really is what ``mlserver start`` does out of the box.  ``batch`` is
    ``(max_batch_size, max_batch_time in seconds)`` for adaptive batching.  The gRPC and
    metrics servers keep their defaults but get ports of their own so instances can coexist.
    """
    folder = layout.scratch / "mlserver" / key
    (folder / model.name).mkdir(parents=True, exist_ok=True)
    settings: dict[str, Any] = {
        "host": "127.0.0.1",
        "http_port": port,
        "grpc_port": free_port(),
        "metrics_port": free_port(),
    }
    notes = []
    if debug is not None:
        settings["debug"] = debug
    notes.append(f"debug {'on' if debug in (None, True) else 'off'}")
    if parallel_workers is not None:
        settings["parallel_workers"] = parallel_workers
    notes.append(f"parallel_workers {1 if parallel_workers is None else parallel_workers}")
    model_settings: dict[str, Any] = {
        "name": model.name,
        "implementation": MLSERVER_SKLEARN,
        "parameters": {"uri": str(model.path)},
    }
    if batch is not None:
        model_settings["max_batch_size"], model_settings["max_batch_time"] = batch
        notes.append(f"adaptive batching {batch[0]} rows / {batch[1] * 1000:g} ms")
    else:
        notes.append("adaptive batching off")
    (folder / "settings.json").write_text(json.dumps(settings, indent=2) + "\n")
    (folder / model.name / "model-settings.json").write_text(json.dumps(model_settings, indent=2) + "\n")
    return Server(
        key=key,
        name="MLServer" if debug is not None or parallel_workers is not None else "MLServer (defaults)",
        settings=", ".join(notes),
        argv=(str(layout.peer_bin("mlserver") / "mlserver"), "start", str(folder)),
        port=port,
        cwd=folder,
        predict_path=f"/v2/models/{model.name}/infer",
        ready_path="/v2/health/ready",
        protocol="v2",
        answer_key="outputs",
    )
