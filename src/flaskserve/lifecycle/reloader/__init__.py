"""Loading and unloading models while the server runs (the Open Inference Protocol's model repository).

A load rescans one model's folder and loads every version exactly as start-up
does, and only once every version has loaded does it swap them all into the
registry at once: a failure leaves the registry as it was, so the versions served
before keep serving. An unload takes all of a model's versions out of the
registry; they are then no longer "configured to be loaded", so readiness does
not count them. Every action respects the model's version policy
(:mod:`flaskserve.models.policy`), and a pin made through the API over it.

The parts, one job each:

- :mod:`.coordinator` — :class:`Reloader`, the one object the app and the watcher
  hold: each action (load, pin, unpin, unload, a watched folder's sync, a folder
  that left) decides which versions serve, then has the others do the work;
- :mod:`.versions` — what each model serves in this process, and the one way it
  changes: load, verify, swap, remove;
- :mod:`.pins` — the version policy in force: an API pin over the settings' policy;
- :mod:`.sync` — what a watched folder should serve, from what the watcher saw;
- :mod:`.replay` — one order for all workers' actions through the journal, and
  the repetition of the others' before this worker's next request;
- :mod:`.index` — the repository index: what serves, what does not, and why.
"""

from flaskserve.lifecycle.reloader.coordinator import Reloader
from flaskserve.lifecycle.reloader.index import NOT_LOADED, UNLOADED, IndexRow

__all__ = ["NOT_LOADED", "UNLOADED", "IndexRow", "Reloader"]
