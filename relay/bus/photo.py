"""A lookout's photo: decoded before it is kept, and kept as a JPEG the node made.

Only JPEG and PNG are opened (Pillow's other decoders never see the bytes); the
pixel count is bounded before any pixel is decoded (a small file can claim a
huge picture: a decompression bomb). What is stored and served is Pillow's own
JPEG of the decoded picture, turned upright, at most MAX_SIDE on its long side:
no metadata (a phone's GPS position), nothing appended after the picture, so
the bytes served as image/jpeg are a JPEG and only that.
"""

from __future__ import annotations

import io
import warnings

from PIL import Image, ImageOps

from relay.refusal import Refused

MAX_PIXELS = 40_000_000  # about 8000 x 5000: any camera's or phone's photo
MAX_PNG_PIXELS = 16_000_000  # a PNG decodes whole (a JPEG at a smaller scale): 64 MB
MAX_SIDE = 2048
FORMATS = ("JPEG", "PNG")
NOT_A_PICTURE = "photo is not a readable JPEG or PNG picture"
QUALITIES = (88, 75, 60, 45)
SMALL_ENOUGH = 256 * 1024  # a re-encoded photo may grow to this much


def clean_photo(data: bytes) -> bytes:
    """The photo as a JPEG of the node's making, or Refused (400) saying why.
    Decodes: run it off the event loop."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data), formats=FORMATS) as opened:
                picture = _decoded(opened)
        except Refused:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise Refused(400, f"photo has more than {MAX_PIXELS} pixels") from None
        except Exception:  # Pillow on hostile bytes: OSError, ValueError, SyntaxError, ...
            raise Refused(400, NOT_A_PICTURE) from None
    # A photo the sender already made small (the pages shrink phone photos) stays
    # about as small: a lower quality where 88 would have grown it.
    for quality in QUALITIES:
        out = io.BytesIO()
        picture.save(out, "JPEG", quality=quality)
        if out.tell() <= max(len(data), SMALL_ENOUGH):
            break
    return out.getvalue()


def _decoded(opened: Image.Image) -> Image.Image:
    width, height = opened.size
    bound = MAX_PIXELS if opened.format == "JPEG" else MAX_PNG_PIXELS
    if width * height > bound:
        raise Refused(400, f"photo has more than {bound} pixels")
    if width < 1 or height < 1:
        raise Refused(400, NOT_A_PICTURE)
    if opened.format == "JPEG":
        opened.draft("RGB", (MAX_SIDE, MAX_SIDE))  # decode at a smaller scale: faster
    opened.load()
    picture = ImageOps.exif_transpose(opened) or opened
    if "A" in picture.getbands() or picture.mode == "P":
        picture = picture.convert("RGBA")
        flat = Image.new("RGB", picture.size, "white")  # transparency shows as paper
        flat.paste(picture, mask=picture.getchannel("A"))
        picture = flat
    picture = picture.convert("RGB")
    picture.thumbnail((MAX_SIDE, MAX_SIDE))
    return picture
