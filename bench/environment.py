"""The machine and the software a run ran on, for the report's Machine and Versions tables.

Versions are read by asking each environment's own interpreter, not this one: MLServer runs
from a virtualenv of its own (see ``setup_peers.sh``), and its scikit-learn or numpy could
differ from flaskserve's, which the report must show.  Both lists are recorded because a
figure is only comparable with one taken on the same machine and the same versions.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

import load

#: The packages whose versions shape flaskserve's figures, from the environment the run uses.
MAIN_PACKAGES = (
    "flaskserve",
    "flask",
    "werkzeug",
    "gunicorn",
    "granian",
    "scikit-learn",
    "numpy",
    "joblib",
    "orjson",
)
#: The same for each peer's rows, from the peer's own virtualenv.
PEER_PACKAGES = {
    "mlserver": ("mlserver", "mlserver-sklearn", "uvicorn", "fastapi", "uvloop", "scikit-learn", "numpy"),
    "litserve": ("litserve", "uvicorn", "fastapi", "scikit-learn", "numpy"),
    "bentoml": ("bentoml", "uvicorn", "starlette", "scikit-learn", "numpy"),
}

_VERSIONS_PROBE = (
    "import json, sys\nfrom importlib import metadata\nout = {}\n"
    "for name in sys.argv[1:]:\n"
    "    try:\n        out[name] = metadata.version(name)\n"
    "    except metadata.PackageNotFoundError:\n        out[name] = 'not installed'\n"
    "print(json.dumps(out))"
)


def package_versions(python: Path, names: Sequence[str]) -> dict[str, str]:
    """Installed versions of ``names`` in the environment of ``python``; empty if it fails."""
    result = subprocess.run(
        [str(python), "-c", _VERSIONS_PROBE, *names], capture_output=True, text=True, check=False
    )
    versions: dict[str, str] = json.loads(result.stdout) if result.returncode == 0 else {}
    return versions


def flaskserve_revision(repo: Path) -> str:
    """The commit checked out in ``repo``, and whether ``src`` differs from it."""
    result = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        return "no commit yet"
    dirty = subprocess.run(
        ["git", "-C", str(repo), "status", "--porcelain", "src"], capture_output=True, text=True, check=False
    ).stdout.strip()
    return result.stdout.strip() + (" with uncommitted changes" if dirty else "")


def versions(repo: Path, python: Path, peer_pythons: Mapping[str, Path], wrk: str) -> list[tuple[str, str]]:
    """Every version the report lists, sorted by name.

    A package a peer's virtualenv has at another version than the main one is listed again,
    marked as that peer's.  ``peer_pythons`` holds the peers in the run, by name.
    """
    found = package_versions(python, MAIN_PACKAGES)
    found["flaskserve"] = f"{found.get('flaskserve', 'not installed')} ({flaskserve_revision(repo)})"
    for peer, peer_python in peer_pythons.items():
        for name, version in package_versions(peer_python, PEER_PACKAGES[peer]).items():
            found.setdefault(name, version)
            if found[name] != version:
                found[f"{name} ({peer}'s virtualenv)"] = version
    found["wrk"] = load.wrk_version(wrk)
    return sorted(found.items())


def _first_line(path: str, prefix: str) -> str | None:
    with open(path) as lines:
        return next((line for line in lines if line.startswith(prefix)), None)


def _cpu() -> str:
    line = _first_line("/proc/cpuinfo", "model name")
    return line.split(":", 1)[1].strip() if line is not None else "unknown"


def _memory() -> str:
    line = _first_line("/proc/meminfo", "MemTotal:")
    return f"{int(line.split()[1]) / 2**20:.1f} GiB" if line is not None else "unknown"


def _system() -> str:
    """The distribution's name and the kernel's release, or Python's summary of the platform."""
    try:
        release = dict(
            line.split("=", 1) for line in Path("/etc/os-release").read_text().splitlines() if "=" in line
        )
        return f"{release['PRETTY_NAME'].strip(chr(34))}, Linux {platform.release()}"
    except (OSError, KeyError):
        return platform.platform()


def machine() -> list[tuple[str, str]]:
    """The rows of the report's Machine table: cores usable, CPU, memory, system, Python."""
    return [
        ("nproc", str(len(os.sched_getaffinity(0)))),
        ("CPU", _cpu()),
        ("memory", _memory()),
        ("system", _system()),
        ("Python", platform.python_version()),
    ]
