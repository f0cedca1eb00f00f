"""What every loader hands back, and all the server assumes of it.

A loader turns a file into a model object: a scikit-learn estimator as it was
stored, an adapter around a booster or an ONNX graph, or an operator's own
Python class. The rest of the server sees them all as an :class:`Estimator`.
"""

from __future__ import annotations

from typing import Protocol


class Estimator(Protocol):
    """A loaded model: an object that offers prediction methods by name.

    The protocol declares no member, and that is the contract, not an
    omission. A model offers *some* of the methods in
    :data:`flaskserve.models.signature.KNOWN_METHODS` (``predict``,
    ``predict_proba``, ``predict_log_proba``, ``decision_function``,
    ``transform``): a regressor has no ``predict_proba``, a transformer no
    ``predict``, so no single method can be required. The server therefore
    never calls one directly. Reading the signature, it looks each known
    method up with ``getattr`` and keeps those that are callable (at least one
    must be); serving, it calls ``getattr(estimator, method)(inputs)`` only for
    a method the signature lists. Typing the model as this protocol rather
    than ``Any`` holds the code to that rule: ``estimator.predict(...)``
    does not type-check, ``getattr`` does.

    Each method takes the input its signature validated (a 2-D float64 matrix,
    a DataFrame of those columns for a model that needs one, or a 1-D object
    array of ``str`` for a text model) and returns something ``numpy.asarray``
    turns into an array with one entry per input row.

    The signature also reads these attributes, in scikit-learn's names, when
    the model has them; adapters of other formats copy them:

    - ``feature_names_in_``: the feature names, in input order;
    - ``n_features_in_``: how many features, when the names are unknown;
    - ``classes_``: a classifier's class labels, in the order of the columns
      of ``predict_proba``.
    """
