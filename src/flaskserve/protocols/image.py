"""Images in: a PNG or JPEG body becomes one feature row of an image model.

A model whose settings declare ``image`` (:class:`~flaskserve.settings.ImageInput`)
takes, on the simple protocol's routes, a raw body sent as ``image/png`` or
``image/jpeg`` (the web edge hands a multipart upload's ``file`` field over the
same way): :func:`image_matrix`. The tensor protocols carry images inside their
requests — KServe V1 as ``{"b64": ...}`` rows, the Open Inference Protocol as
``BYTES`` elements — and hand them over as a list of byte strings, one per row,
each named by its first bytes: :func:`images_matrix`. Every image is decoded
with Pillow, within bounds:

- only the PNG and JPEG decoders are tried, whatever the data claims to be;
- the pixel count, read from each header before any pixel is decoded, must be
  within ``max_pixels`` for the whole request, all its images together (a small
  file can declare a huge canvas — a decompression bomb — and a request of many
  small bombs must not add up to one big one); the body itself is already within
  ``limits.max_body_bytes``;
- a corrupt or truncated file is a 400 that says so, never a traceback.

It is then converted to grayscale or RGB, optionally inverted, resized to the
declared size (area averaging, so thin strokes of a large drawing survive), and
scaled so that a full-intensity pixel is ``scale``. Rows are read top to bottom,
pixels left to right, channels interleaved: the order of scikit-learn's
``load_digits`` features ``pixel_0_0 … pixel_7_7``. The row is then validated by
the signature like any other. Pure: no Flask.
"""

from __future__ import annotations

import base64
import binascii
import io
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import numpy as np
import numpy.typing as npt

from flaskserve.errors import InvalidValue, LimitExceeded, ShapeMismatch, UnsupportedMediaType, clip
from flaskserve.models.served import ServedModel
from flaskserve.settings import ImageInput

#: Media types of image bodies, and the Pillow decoder each one may use.
IMAGE_MEDIA_TYPES = {"image/png": "PNG", "image/jpeg": "JPEG"}
#: The magic numbers of the accepted formats, to name an upload sent without its media type.
_SIGNATURES = ((b"\x89PNG\r\n\x1a\n", "image/png"), (b"\xff\xd8\xff", "image/jpeg"))
_FULL_INTENSITY = 255.0
_NOT_AN_IMAGE = object()

#: Reads images, one row each, into a model's matrix: what the protocols are given for an image model.
ImageReader = Callable[[list[bytes]], npt.NDArray[np.float64]]


def is_image(mimetype: str) -> bool:
    return mimetype in IMAGE_MEDIA_TYPES


def sniff(data: bytes) -> str | None:
    """The media type of ``data`` from its first bytes, when it is a PNG or a JPEG."""
    return next((mimetype for magic, mimetype in _SIGNATURES if data.startswith(magic)), None)


def image_matrix(data: bytes, mimetype: str, model: ServedModel) -> npt.NDArray[np.float64]:
    """One feature row (a 1 * features matrix) from an image body, as ``model``'s settings declare."""
    spec = _image_input(model)
    pixels, _ = _decode(data, IMAGE_MEDIA_TYPES[mimetype], spec, spec.max_pixels, what="the body")
    return model.signature.matrix_from_rows(_scaled([pixels], spec))


def images_matrix(images: Sequence[bytes], model: ServedModel) -> npt.NDArray[np.float64]:
    """One feature row per image, for images carried inside a request rather than as its body.

    Each image's format is read from its first bytes (a tensor element has no
    media type); ``max_pixels`` bounds all the images of the request together.
    """
    spec = _image_input(model)
    budget = spec.max_pixels
    rows = []
    for position, data in enumerate(images):
        mimetype = sniff(data)
        if mimetype is None:
            raise InvalidValue(
                f"image {position} is neither a PNG nor a JPEG (its first bytes say so); "
                "send the file's own bytes, base64-encoded where the protocol asks for it"
            )
        pixels, used = _decode(data, IMAGE_MEDIA_TYPES[mimetype], spec, budget, what=f"image {position}")
        budget -= used
        rows.append(pixels)
    return model.signature.matrix_from_rows(_scaled(rows, spec))


def b64_rows(values: Any, *, key: str) -> list[bytes] | None:
    """The images of JSON rows that are each one ``{"b64": ...}`` value; None when no row is one.

    A row is ``{"b64": ...}`` or an object with one such value under any name
    (TensorFlow Serving calls it ``image_bytes``, KServe's samples ``image``);
    ``values`` may also be one such named column (``{"image_bytes": [...]}``).
    """
    if isinstance(values, dict) and len(values) == 1:
        (values,) = values.values()
    if not isinstance(values, list) or not values:
        return None
    encoded = [_one_b64(row) for row in values]
    if all(item is _NOT_AN_IMAGE for item in encoded):
        return None
    if any(item is _NOT_AN_IMAGE for item in encoded):
        raise ShapeMismatch(
            f"the rows of '{key}' must all be images ({{\"b64\": ...}}) or all be pixel rows; not a mix"
        )
    return [_base64(item, position) for position, item in enumerate(encoded)]


def _one_b64(row: Any) -> Any:
    """The base64 text of a row holding one image (checked by the caller), or ``_NOT_AN_IMAGE``."""
    if isinstance(row, dict) and len(row) == 1:
        (value,) = row.values()
        if row.keys() == {"b64"}:
            return value
        if isinstance(value, dict) and value.keys() == {"b64"}:
            return value["b64"]
    return _NOT_AN_IMAGE


def _base64(text: Any, position: int) -> bytes:
    if not isinstance(text, str):
        raise InvalidValue(f'image {position}: a {{"b64": ...}} value must hold a base64 string')
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidValue(f"image {position}: {clip(text)!r} is not valid base64") from None


def reader(model: ServedModel) -> ImageReader | None:
    """:func:`images_matrix` for ``model``, when its settings declare an image input; else None.

    The tensor protocols take it as an argument: rows that are images are only
    read as images for a model that declares them.
    """
    return partial(images_matrix, model=model) if model.settings.image is not None else None


def _image_input(model: ServedModel) -> ImageInput:
    spec = model.settings.image
    if spec is None:
        raise UnsupportedMediaType(
            f"model '{model.name}' does not take images; its settings declare no 'image' input. "
            "Send JSON with 'Content-Type: application/json'"
        )
    values = spec.width * spec.height * spec.channels
    if values != model.signature.n_features:
        raise ShapeMismatch(
            f"model '{model.name}' declares {spec.width}x{spec.height} images of {spec.channels} channel(s), "
            f"{values} values, but takes {model.signature.n_features} features"
        )
    return spec


def _scaled(images: list[npt.NDArray[Any]], spec: ImageInput) -> npt.NDArray[np.float64]:
    rows = np.stack(images).astype(np.float64).reshape(len(images), -1)
    return rows * (spec.scale / _FULL_INTENSITY)


def _decode(
    data: bytes, fmt: str, spec: ImageInput, max_pixels: int, *, what: str
) -> tuple[npt.NDArray[Any], int]:
    """The image resized to the declared size, and the pixels its decoding cost."""
    image_module = _pillow()
    try:
        with image_module.open(io.BytesIO(data), formats=[fmt]) as image:
            width, height = image.size
            if width * height > max_pixels:
                raise LimitExceeded(
                    f"{what} is {width}x{height} pixels; at most {spec.max_pixels} pixels are accepted "
                    "per request"
                )
            image.load()
            converted = image.convert("L" if spec.channels == 1 else "RGB")
    except (image_module.DecompressionBombError, image_module.DecompressionBombWarning):
        raise LimitExceeded(
            f"{what} declares too many pixels; at most {spec.max_pixels} are accepted"
        ) from None
    except (OSError, SyntaxError, ValueError):
        # Pillow's UnidentifiedImageError is an OSError; truncated and corrupt data raise these too.
        raise InvalidValue(
            f"{what} is not a readable {fmt} image: it is corrupt, truncated or of another format"
        ) from None
    if spec.invert:
        from PIL import ImageOps

        converted = ImageOps.invert(converted)
    resized = converted.resize((spec.width, spec.height), image_module.Resampling.BOX)
    return np.asarray(resized), width * height


def _pillow() -> Any:
    try:
        from PIL import Image
    except ImportError:
        raise UnsupportedMediaType(
            "this server cannot read images: its operator must install Pillow "
            "(pip install 'flaskserve[images]')"
        ) from None
    return Image
