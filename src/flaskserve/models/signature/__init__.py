"""What a served model accepts and offers, inferred from the estimator.

The signature is the contract every protocol validates against: the ordered
feature names, the input dtype, the methods the model offers and, for
classifiers, its classes. Every request is turned into one model input in
signature order *here*, so the protocols agree on validation and on answers.

A signature is one of two kinds:

- ``table``: rows of numbers, one column per feature. The input is a 2-D
  float64 matrix, the shape every scikit-learn estimator fit on a table takes.
- ``text``: one string per row, under one feature name (``text`` unless the
  settings name it). The input is a 1-D object array of ``str``, the shape a
  text vectorizer (and so a Pipeline that starts with one) takes. Numbers and
  nulls are refused rather than turned into text, and each string's UTF-8
  size is bounded, because a vectorizer's cost grows with the text.

The package owns three things, one module each:

- :mod:`.contract`: the :class:`Signature` and the constants that describe it;
- :mod:`.validation`: turning rows, records and columns into the model input,
  or refusing them with a message that names the fix;
- :mod:`.from_estimator`: reading a signature off a loaded model.

Import rule: code outside the package imports from ``flaskserve.models.signature``
only, never from its modules, which may be reshaped freely. Inside, imports
point one way, ``from_estimator`` -> ``contract`` -> ``validation``; the last
names :class:`Signature` for the type checker only. No module here imports a
loader, a protocol or Flask.
"""

from __future__ import annotations

from flaskserve.models.signature.contract import (
    DEFAULT_MAX_TEXT_BYTES,
    KNOWN_METHODS,
    TABLE,
    TEXT,
    TEXT_FEATURE,
    InputKind,
    Signature,
)
from flaskserve.models.signature.from_estimator import infer_signature, takes_text

__all__ = [
    "DEFAULT_MAX_TEXT_BYTES",
    "KNOWN_METHODS",
    "TABLE",
    "TEXT",
    "TEXT_FEATURE",
    "InputKind",
    "Signature",
    "infer_signature",
    "takes_text",
]
