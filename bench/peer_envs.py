"""Where the peer servers' private virtualenvs live, the same folder ``setup_peers.sh`` fills.

Each peer (MLServer, LitServe, BentoML) has a virtualenv of its own under a cache folder outside
the repository: ``$FLASKSERVE_BENCH_PEERS``, or ``$XDG_CACHE_HOME/flaskserve-bench/peers``
(``~/.cache/flaskserve-bench/peers``).  A peer counts as installed once the setup script has
stamped its folder; one whose install failed has no stamp and is left out of the line-up.
"""

from __future__ import annotations

import os
from pathlib import Path

#: Every peer, by the name its virtualenv folder and ``--skip-peer`` use.
PEERS = ("mlserver", "litserve", "bentoml")

#: The file the setup script writes into a virtualenv whose install finished.
STAMP = ".flaskserve-bench-installed"


def folder() -> Path:
    """The folder holding one virtualenv per peer."""
    explicit = os.environ.get("FLASKSERVE_BENCH_PEERS")
    if explicit:
        return Path(explicit)
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "flaskserve-bench" / "peers"


def bin_dir(peer: str) -> Path:
    """The ``bin`` folder of ``peer``'s virtualenv."""
    return folder() / peer / "bin"


def installed(peer: str) -> bool:
    """Whether the setup script finished installing ``peer``."""
    return (folder() / peer / STAMP).is_file()
