"""Images in: a PNG or JPEG body becomes one feature row of an image model.

A model whose settings declare ``image`` (:class:`~flaskserve.settings.ImageInput`)
takes, on the simple protocol's routes, a raw body sent as ``image/png`` or
``image/jpeg`` (the web edge hands a multipart upload's ``file`` field over the
same way). The image is decoded with Pillow, within bounds:

- only the PNG and JPEG decoders are tried, whatever the body claims to be;
- its pixel count, read from the header before any pixel is decoded, must be
  within ``max_pixels`` (a small file can declare a huge canvas: a decompression
  bomb); the body itself is already within ``limits.max_body_bytes``;
- a corrupt or truncated file is a 400 that says so, never a traceback.

It is then converted to grayscale or RGB, optionally inverted, resized to the
declared size (area averaging, so thin strokes of a large drawing survive), and
scaled so that a full-intensity pixel is ``scale``. Rows are read top to bottom,
pixels left to right, channels interleaved: the order of scikit-learn's
``load_digits`` features ``pixel_0_0 … pixel_7_7``. The row is then validated by
the signature like any other. Pure: no Flask.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import numpy.typing as npt

from flaskserve.errors import InvalidValue, LimitExceeded, ShapeMismatch, UnsupportedMediaType
from flaskserve.models.served import ServedModel
from flaskserve.settings import ImageInput

#: Media types of image bodies, and the Pillow decoder each one may use.
IMAGE_MEDIA_TYPES = {"image/png": "PNG", "image/jpeg": "JPEG"}
#: The magic numbers of the accepted formats, to name an upload sent without its media type.
_SIGNATURES = ((b"\x89PNG\r\n\x1a\n", "image/png"), (b"\xff\xd8\xff", "image/jpeg"))
_FULL_INTENSITY = 255.0


def is_image(mimetype: str) -> bool:
    return mimetype in IMAGE_MEDIA_TYPES


def sniff(data: bytes) -> str | None:
    """The media type of ``data`` from its first bytes, when it is a PNG or a JPEG."""
    return next((mimetype for magic, mimetype in _SIGNATURES if data.startswith(magic)), None)


def image_matrix(data: bytes, mimetype: str, model: ServedModel) -> npt.NDArray[np.float64]:
    """One feature row (a 1 * features matrix) from an image body, as ``model``'s settings declare."""
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
    pixels = _decode(data, mimetype, spec)
    row = pixels.astype(np.float64).reshape(1, -1) * (spec.scale / _FULL_INTENSITY)
    return model.signature.matrix_from_rows(row)


def _decode(data: bytes, mimetype: str, spec: ImageInput) -> npt.NDArray[Any]:
    image_module = _pillow()
    fmt = IMAGE_MEDIA_TYPES[mimetype]
    try:
        with image_module.open(io.BytesIO(data), formats=[fmt]) as image:
            width, height = image.size
            if width * height > spec.max_pixels:
                raise LimitExceeded(
                    f"the image is {width}x{height} pixels; at most {spec.max_pixels} pixels are accepted"
                )
            image.load()
            converted = image.convert("L" if spec.channels == 1 else "RGB")
    except (image_module.DecompressionBombError, image_module.DecompressionBombWarning):
        raise LimitExceeded(
            f"the image declares too many pixels; at most {spec.max_pixels} are accepted"
        ) from None
    except (OSError, SyntaxError, ValueError):
        # Pillow's UnidentifiedImageError is an OSError; truncated and corrupt data raise these too.
        raise InvalidValue(
            f"the body is not a readable {fmt} image: it is corrupt, truncated or of another format"
        ) from None
    if spec.invert:
        from PIL import ImageOps

        converted = ImageOps.invert(converted)
    resized = converted.resize((spec.width, spec.height), image_module.Resampling.BOX)
    return np.asarray(resized)


def _pillow() -> Any:
    try:
        from PIL import Image
    except ImportError:
        raise UnsupportedMediaType(
            "this server cannot read images: its operator must install Pillow "
            "(pip install 'flaskserve[images]')"
        ) from None
    return Image
