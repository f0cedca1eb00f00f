"""Who may run code when a model file loads.

Pickle (and joblib, which wraps it) executes arbitrary code while loading: a
pickle file is as dangerous as a script. flaskserve loads one only when the
operator has trusted it, by ``--allow-pickle`` for the files named on the
command line or by pinning the file's SHA-256 digest in the configuration.
skops files are inspected first and load only if every type they would build is
on skops' own safe list, on :data:`DEFAULT_SKOPS_TRUSTED_TYPES` (scikit-learn's own
data-only tree internals, whose contents are verified after loading) or on the
operator's list; ``trusted=True`` is never used.
A model written as a Python class (``model.py``) is code by definition: it loads
only under ``--allow-code`` or a pinned digest, a separate decision from pickle
because trusting the pickles one trained is not trusting every script beside them.
Every decision is made on the digest of the bytes a :class:`ModelFile` holds, and the
loader builds the model from those same bytes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePath

from flaskserve.errors import UntrustedModel

_CHUNK = 1 << 20

DEFAULT_SKOPS_TRUSTED_TYPES: frozenset[str] = frozenset(
    {
        "sklearn.tree._tree.Tree",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
        "sklearn._loss.link.IdentityLink",
        "sklearn._loss.link.LogLink",
        "sklearn._loss.link.LogitLink",
        "sklearn._loss.link.HalfLogitLink",
        "sklearn._loss.link.MultinomialLogit",
        "sklearn._loss.link.Interval",
        "sklearn._loss.loss.HalfSquaredError",
        "sklearn._loss.loss.AbsoluteError",
        "sklearn._loss.loss.PinballLoss",
        "sklearn._loss.loss.HuberLoss",
        "sklearn._loss.loss.HalfPoissonLoss",
        "sklearn._loss.loss.HalfGammaLoss",
        "sklearn._loss.loss.HalfBinomialLoss",
        "sklearn._loss.loss.HalfMultinomialLoss",
        "sklearn._loss.loss.ExponentialLoss",
        "sklearn._loss._loss.CyHalfMultinomialLoss",
    }
)
"""scikit-learn's own internal types that skops may build without ``--trust-type``.

These are what decision trees, random forests, extra trees, isolation forests and
(histogram) gradient boosting models hold besides estimators. Each holds data only:
skops builds it from numbers and arrays, and the only code that ever runs on it is
scikit-learn's own. Why each is safe to build from a file nobody vouched for:

- ``sklearn.tree._tree.Tree`` and ``...predictor.TreePredictor`` store a tree as
  node arrays whose child and feature indices scikit-learn's compiled code follows
  without bounds checks, which is why skops itself does not trust them. The skops
  loader checks every tree of every model it loads
  (:mod:`flaskserve.models.loaders.tree_check`) before any model method runs, so a
  crafted tree is refused instead of read out of bounds.
- ``..._hist_gradient_boosting.binning._BinMapper`` holds bin edges and per-feature
  flags; at prediction time only its categorical flags are read, and the tree check
  verifies them against the trees.
- The ``sklearn._loss.link`` and ``sklearn._loss.loss`` classes are parameter
  holders (an interval, a quantile, a link) whose methods are numpy arithmetic;
  ``CyHalfMultinomialLoss`` is the compiled multinomial loss, which holds nothing.
  Recent skops versions trust these already; older ones ask for them.

Anything else a file holds, scikit-learn helpers such as ``functools.partial`` or
``sklearn.utils.validation.check_array`` (stored by a HistGradientBoosting model with
categorical features) included, still needs the operator's trust.
"""


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class ModelFile:
    """A model file's bytes, read once, and their digest: the bytes judged are the bytes loaded.

    Trust is decided on ``sha256`` and loaders build the model from ``data``, never by
    opening ``path`` again; a file replaced while it loads cannot slip other bytes past
    a pinned digest. ``path`` names the file and locates its folder.
    """

    path: Path
    data: bytes = field(repr=False)
    sha256: str

    @classmethod
    def read(cls, path: Path) -> ModelFile:
        data = path.read_bytes()
        return cls(path, data, hashlib.sha256(data).hexdigest())


@dataclass(frozen=True)
class TrustPolicy:
    """The operator's decisions about code that runs at load time."""

    #: Load pickle/joblib files found under the path given on the command line.
    allow_pickle: bool = False
    #: SHA-256 digests (hex) of pickle files trusted one by one.
    trusted_sha256: frozenset[str] = field(default_factory=frozenset)
    #: Fully qualified type names that skops may build beyond its safe set and
    #: :data:`DEFAULT_SKOPS_TRUSTED_TYPES`.
    skops_trusted_types: frozenset[str] = field(default_factory=frozenset)
    #: Run Python model files (``model.py``) found under the path given on the command line.
    allow_code: bool = False

    @classmethod
    def build(
        cls,
        *,
        allow_pickle: bool = False,
        trusted_sha256: Iterable[str] = (),
        skops_trusted_types: Iterable[str] = (),
        allow_code: bool = False,
    ) -> TrustPolicy:
        return cls(
            allow_pickle=allow_pickle,
            trusted_sha256=frozenset(d.strip().lower() for d in trusted_sha256),
            skops_trusted_types=frozenset(skops_trusted_types),
            allow_code=allow_code,
        )

    def check_pickle(self, display_name: str, sha256: str, *, file_name: str = "MODEL.pkl") -> None:
        """Refuse a pickle-based file unless the operator trusted it; ``file_name`` is its name, no folder."""
        if self.allow_pickle or sha256 in self.trusted_sha256:
            return
        converted = f"{PurePath(file_name).stem}.skops"
        raise UntrustedModel(
            f"refusing to load {display_name}: pickle and joblib files run code when they load. "
            "If you trust this file, pass --allow-pickle, or pin its digest with "
            f'trusted_sha256 = ["{sha256}"] in the config file; or convert it to a safe format '
            f"with 'flaskserve convert {file_name} {converted}'"
        )

    def check_code(self, display_name: str, sha256: str) -> None:
        """Refuse a Python model file unless the operator trusted it; nothing of it has run yet."""
        if self.allow_code or sha256 in self.trusted_sha256:
            return
        raise UntrustedModel(
            f"refusing to load {display_name}: a Python model file runs its code when it loads. "
            "If you trust this file, pass --allow-code, or pin its digest with "
            f'trusted_sha256 = ["{sha256}"] in the config file'
        )

    def check_skops_types(self, display_name: str, untrusted: Iterable[str]) -> list[str]:
        """Return the types to pass to skops as trusted, or refuse if any is not allowed.

        ``untrusted`` is what skops reports beyond its own safe set; a type passes if it
        is on :data:`DEFAULT_SKOPS_TRUSTED_TYPES` or the operator named it.
        """
        wanted = sorted(set(untrusted))
        refused = [
            t for t in wanted if t not in DEFAULT_SKOPS_TRUSTED_TYPES and t not in self.skops_trusted_types
        ]
        if refused:
            raise UntrustedModel(
                f"refusing to load {display_name}: it contains types that are not trusted: "
                f"{', '.join(refused)}. If you trust them, pass --trust-type for each or list them in "
                "skops_trusted_types in the config file"
            )
        return wanted
