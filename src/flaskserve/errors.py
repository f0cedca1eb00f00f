"""The error tree: every failure a client can cause or see, with its HTTP status.

Each class carries the HTTP ``status`` and a stable machine-readable ``code``; the
web edge renders any :class:`FlaskserveError` as ``{"error": message, "code": code}``
in exactly one place (``flaskserve.web.errors``). A command that stops on one
exits with its ``exit_code`` (2 unless the class says otherwise, as Click's usage
errors do). The core raises these and never imports Flask.

::

    FlaskserveError (500 internal_error)
    ├── BadRequest (400 bad_request)
    │   ├── MalformedRequest (400 malformed_request)
    │   ├── InvalidInput (400 invalid_input)
    │   │   ├── MissingFeature (400 missing_feature)
    │   │   ├── UnknownFeature (400 unknown_feature)
    │   │   ├── WrongFeatureCount (400 wrong_feature_count)
    │   │   ├── InvalidValue (400 invalid_value)
    │   │   └── ShapeMismatch (400 shape_mismatch)
    │   ├── UnsupportedMethod (400 unsupported_method)
    │   ├── ExplainUnsupported (400 explain_unsupported)
    │   └── LimitExceeded (400 limit_exceeded)
    ├── Unauthorized (401 unauthorized)
    ├── Forbidden (403 forbidden)
    ├── NotFound (404 not_found)
    │   ├── ModelNotFound (404 model_not_found)
    │   └── VersionNotFound (404 version_not_found)
    ├── PayloadTooLarge (413 payload_too_large)
    ├── UnsupportedMediaType (415 unsupported_media_type)
    ├── TooManyRequests (429 rate_limited)
    ├── PredictionFailed (500 prediction_failed)
    ├── PredictionTimeout (504 prediction_timeout)
    ├── ServiceUnavailable (503 unavailable)
    │   ├── ModelNotReady (503 model_not_ready)
    │   └── JournalUnavailable (503 journal_unavailable)
    ├── ModelLoadError (500 model_load_failed)
    │   └── UntrustedModel (500 untrusted_model)
    └── ConfigError (500 invalid_config): the operator's configuration, at start-up
        └── KeyStoreError (500 invalid_key_store, exit 1): a bad key name, scope or key file

Messages name the bad value and the fix, and never contain a file path or a
traceback: they are shown to whoever sent the request.
"""

from __future__ import annotations

from typing import ClassVar


class FlaskserveError(Exception):
    """Base of every error flaskserve raises on purpose. As ``internal_error``, it answers anything
    unexpected: a 500 whose message carries only an error id, under which the traceback is logged.
    """

    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"
    default_message: ClassVar[str] = "internal server error"
    #: The exit status of a command that stops on this error.
    exit_code: ClassVar[int] = 2

    def __init__(self, message: str | None = None, *, headers: dict[str, str] | None = None) -> None:
        self.message = message or self.default_message
        self.headers = headers or {}
        super().__init__(self.message)


class BadRequest(FlaskserveError):
    """The request is not valid: the base of every 400, raised as itself for a bad parameter."""

    status = 400
    code = "bad_request"
    default_message = "the request is not valid"


class MalformedRequest(BadRequest):
    """The body could not be parsed, or is not of the shape the protocol defines."""

    code = "malformed_request"
    default_message = "the request body is not valid JSON"


class InvalidInput(BadRequest):
    """The body parsed, but its values do not fit the model's signature."""

    code = "invalid_input"
    default_message = "the input does not match the model's signature"


class MissingFeature(InvalidInput):
    """A row lacks a feature of the model's signature; the message names it and the expected ones."""

    code = "missing_feature"


class UnknownFeature(InvalidInput):
    """A row names a feature the model does not take."""

    code = "unknown_feature"


class WrongFeatureCount(InvalidInput):
    """A row given by position has more or fewer values than the model has features."""

    code = "wrong_feature_count"


class InvalidValue(InvalidInput):
    """A value does not fit its feature: a string for a number, or ``null`` without ``allow_missing``."""

    code = "invalid_value"


class ShapeMismatch(InvalidInput):
    """A tensor's data does not fill the shape it declares, or that shape does not fit the model."""

    code = "shape_mismatch"


class UnsupportedMethod(BadRequest):
    """The model does not offer the method the request asked for (e.g. predict_proba on a regressor)."""

    code = "unsupported_method"


class ExplainUnsupported(BadRequest):
    """The model is of a kind flaskserve cannot explain; the message names the kinds it can."""

    code = "explain_unsupported"
    default_message = "this model cannot be explained"


class LimitExceeded(BadRequest):
    """A request is within the body-size limit but asks for too much work (rows, elements, depth...)."""

    code = "limit_exceeded"


class Unauthorized(FlaskserveError):
    """The route needs an API key (the key file holds keys) and the request sent none, or an invalid one."""

    status = 401
    code = "unauthorized"
    default_message = "a valid API key is required: send 'Authorization: Bearer <key>'"


class Forbidden(FlaskserveError):
    """The API key is valid but lacks the scope the route needs (e.g. ``predict:iris``)."""

    status = 403
    code = "forbidden"
    default_message = "this API key does not have the scope this route needs"


class NotFound(FlaskserveError):
    """No route matches the URL; ``GET /`` lists what the server offers."""

    status = 404
    code = "not_found"
    default_message = "not found"


class ModelNotFound(NotFound):
    """The request names a model the server does not serve."""

    code = "model_not_found"


class VersionNotFound(NotFound):
    """The model is served, but not in the version the request names."""

    code = "version_not_found"


class PayloadTooLarge(FlaskserveError):
    """The body is larger than ``limits.max_body_bytes`` (chunked bodies too)."""

    status = 413
    code = "payload_too_large"
    default_message = "the request body is larger than the server accepts"


class UnsupportedMediaType(FlaskserveError):
    """The body is not of a type the route reads (JSON, or a protocol's CSV or binary), or is compressed."""

    status = 415
    code = "unsupported_media_type"
    default_message = "send the body as JSON with 'Content-Type: application/json'"


class TooManyRequests(FlaskserveError):
    """The client spent its rate limit; ``Retry-After`` says how many seconds to wait."""

    status = 429
    code = "rate_limited"
    default_message = "too many requests: slow down and retry later"


class PredictionFailed(FlaskserveError):
    """The model raised while predicting. The message carries an error id that is also in the log."""

    status = 500
    code = "prediction_failed"

    def __init__(self, message: str | None = None, *, error_id: str) -> None:
        super().__init__(message)
        self.error_id = error_id


class PredictionTimeout(FlaskserveError):
    """The model did not answer within ``predict_timeout_s``. The message carries an error id, as in the log.

    The call may still be running: Python cannot stop it, so it keeps its thread until it returns.
    """

    status = 504
    code = "prediction_timeout"

    def __init__(self, message: str | None = None, *, error_id: str) -> None:
        super().__init__(message)
        self.error_id = error_id


class ServiceUnavailable(FlaskserveError):
    """The server cannot answer for now, e.g. rate limits cannot be counted; ``Retry-After`` is set."""

    status = 503
    code = "unavailable"
    default_message = "the service is not ready"


class ModelNotReady(ServiceUnavailable):
    """The model is still loading, or failed to load."""

    code = "model_not_ready"


class JournalUnavailable(ServiceUnavailable):
    """The repository journal could not be written (a read-only or full run directory).

    The action asked for was not carried out, in this worker or any other: what was served before
    keeps serving.
    """

    code = "journal_unavailable"
    default_message = "the server cannot record model changes right now; the models served are unchanged"


class ModelLoadError(FlaskserveError):
    """A model file could not be turned into a served model. Raised at load time, not per request."""

    code = "model_load_failed"


class UntrustedModel(ModelLoadError):
    """The file's format can run code when loaded, and the operator has not trusted it."""

    code = "untrusted_model"


class ConfigError(FlaskserveError):
    """The configuration is invalid; raised at start-up or by a command, never per request."""

    code = "invalid_config"
    default_message = "the configuration is not valid"


class KeyStoreError(ConfigError):
    """An operator mistake with keys: a bad name or scope, a duplicate, an unreadable key file."""

    code = "invalid_key_store"
    default_message = "the API key file is not valid"
    exit_code = 1


def clip(text: str, limit: int = 40) -> str:
    """Shorten a client-supplied value before echoing it in a message."""
    return text if len(text) <= limit else text[: limit - 1] + "…"
