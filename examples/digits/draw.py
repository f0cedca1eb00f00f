"""Draw a handwritten-looking seven as a small PNG, the way a user would on a canvas: dark ink on white.

Run from this folder::

    python draw.py             # writes seven.png (32x32 pixels)

The server reads it as the model's settings declare (``[models.digits.image]`` in
``flaskserve.toml``): grayscale, inverted (the digits were scanned as light ink on
a dark ground), shrunk to 8x8 and scaled to 0..16.
"""

from __future__ import annotations

import argparse
from pathlib import Path

HERE = Path(__file__).resolve().parent
SIZE = 32
#: The strokes of a seven, as a user draws it: the top bar, then the long diagonal.
STROKES = (((7, 6), (25, 6)), ((25, 6), (13, 27)))


def draw(path: Path) -> Path:
    from PIL import Image, ImageDraw

    image = Image.new("L", (SIZE, SIZE), color=255)
    pen = ImageDraw.Draw(image)
    for start, end in STROKES:
        pen.line([start, end], fill=0, width=4)
    image.save(path, format="PNG", optimize=True)
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE / "seven.png", help="the PNG to write")
    args = parser.parse_args(argv)
    print(f"wrote {draw(args.out)}")


if __name__ == "__main__":
    main()
