"""Your own photo, wherever a bundled photo works: a path, a URL, uploaded bytes or an array.

:func:`open_photo` reads any of them into an upright 8-bit RGB PIL image (EXIF
orientation applied; RGBA, palette, 16-bit, CMYK and grayscale converted), refusing,
before decoding, a file larger than :data:`MAX_PHOTO_PIXELS` (a decompression bomb, or
a photo to downscale first; :func:`lessons_lib.images.decode_image` does the decoding for
every image file the course opens). :func:`load_photo` also scales it for a pipeline: longer
side ``max_side``, both sides a multiple of 8.

:class:`PhotoPicker` is the upload panel of notebooks 4 and 5: an ipywidgets
``FileUpload`` in Jupyter, ``google.colab.files.upload`` in Colab, or a path / URL; the
bundled photo stays the default, so every cell runs offline. :func:`offer_download`
hands results to the browser in Colab (one zip) and lists them elsewhere.
"""
from __future__ import annotations

import io
import urllib.error
import urllib.request
import zipfile
from pathlib import Path
from typing import Iterable

import numpy as np
import torch
from PIL import Image

from . import validate as V
from .files import write_unique
from .images import (
    DOWNSCALE_ADVICE,
    MAX_IMAGE_PIXELS,
    decode_image,
    load_image,
    normalize_image,
    resize_to_multiple,
    tensor_to_pil,
)
from .runtime import in_colab

__all__ = ["MAX_PHOTO_PIXELS", "MAX_DOWNLOAD_BYTES", "demo_image", "open_photo", "load_photo", "PhotoPicker",
           "offer_download"]

MAX_PHOTO_PIXELS = MAX_IMAGE_PIXELS  # images.decode_image enforces it, for every file the course opens
MAX_DOWNLOAD_BYTES = 50 * 1024 * 1024
_URL_SCHEMES = ("http://", "https://", "file://")


def demo_image(name: str = "astronaut", size: int = 512) -> Image.Image:
    """The bundled photo: a centred square crop of one of scikit-image's photos (offline), resized.

    ``name``: "astronaut", "chelsea" (a cat) or "coffee".
    """
    from skimage import data as skdata

    loaders = {"astronaut": skdata.astronaut, "chelsea": skdata.chelsea, "coffee": skdata.coffee}
    V.choice("demo image", name, loaders)
    arr = loaders[name]()[..., :3]
    h, w = arr.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    crop = Image.fromarray(np.ascontiguousarray(arr[top:top + side, left:left + side]))
    return crop.resize((size, size), Image.LANCZOS)


def open_photo(source) -> Image.Image:
    """An upright RGB PIL image from a PIL image, a path, an http(s)/file URL, bytes, a
    binary file object, a NumPy array (H, W[, 1/3/4]) or a (3, H, W) tensor in [0, 1]."""
    if isinstance(source, Image.Image):
        return normalize_image(source)
    if isinstance(source, str) and source.lower().startswith(_URL_SCHEMES):
        return decode_image(_fetch(source), source)
    if isinstance(source, (str, Path)):
        return load_image(source)
    if isinstance(source, (bytes, bytearray, memoryview)):
        return decode_image(bytes(source), "the uploaded file")
    if hasattr(source, "read"):
        return decode_image(source.read(), "the file object")
    if isinstance(source, np.ndarray):
        return _from_array(source)
    if torch.is_tensor(source):
        t = source.detach()
        if t.dim() == 4 and t.shape[0] == 1:
            t = t[0]
        if t.dim() != 3 or t.shape[0] not in (1, 3):
            raise ValueError(f"A photo tensor must be (3, H, W) or (1, H, W) in [0, 1], got shape "
                             f"{tuple(source.shape)}.")
        # Clamping 0..255 or [-1, 1] values would give a white or half-black photo without a word.
        V.value_range("The photo tensor", t, 0.0, 1.0)
        return normalize_image(tensor_to_pil(t))
    raise TypeError(f"Cannot read a photo from a {type(source).__name__}: pass a PIL image, a path, "
                    "a URL, the bytes of an image file, or an array.")


def load_photo(source, max_side: int | None = 512, multiple: int = 8) -> Image.Image:
    """:func:`open_photo`, then scaled so the longer side is ``max_side`` (None keeps the
    size) and both sides are multiples of ``multiple`` (8 for Stable Diffusion)."""
    return resize_to_multiple(open_photo(source), multiple, max_side)


def _fetch(url: str) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310 - http(s)/file only
            data = response.read(MAX_DOWNLOAD_BYTES + 1)
    except (urllib.error.URLError, OSError, ValueError) as err:
        raise ConnectionError(
            f"Could not download the photo at {url} ({getattr(err, 'reason', err)}). Check the URL in a "
            "browser and the internet connection, or download the file yourself and pass its path."
        ) from None
    if len(data) > MAX_DOWNLOAD_BYTES:
        raise ValueError(f"The file at {url} is larger than {MAX_DOWNLOAD_BYTES // 2**20} MB; that is "
                         f"not a photo the course can use. {DOWNSCALE_ADVICE}")
    return data


def _from_array(arr: np.ndarray) -> Image.Image:
    a = np.asarray(arr)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (3, 4)):
        channels = a.shape[2] if a.ndim == 3 else None
        raise ValueError(f"A photo array must be (H, W) gray, (H, W, 3) RGB or (H, W, 4) RGBA; got shape "
                         f"{arr.shape}" + (f" ({channels} channels)" if channels else "")
                         + ". Pick the colour channels, e.g. arr[..., :3].")
    if a.dtype != np.uint8:
        a = _array_to_uint8(a)
    return normalize_image(Image.fromarray(a))


def _array_to_uint8(a: np.ndarray) -> np.ndarray:
    """0..255 pixels from an array in [0, 1] (floats) or 0..255; anything else is refused,
    never clipped into a photo that looks plausible (NaN as black, [-1, 1] as half black)."""
    if a.dtype == bool or not np.issubdtype(a.dtype, np.number) or np.iscomplexobj(a):
        raise TypeError(f"A photo array must hold numbers (uint8 0..255, or floats in [0, 1]); got dtype "
                        f"{a.dtype}.")
    floats = np.issubdtype(a.dtype, np.floating)
    a = a.astype(np.float64)
    if a.size == 0:
        raise ValueError(f"The photo array is empty (shape {a.shape}).")
    if not np.isfinite(a).all():
        raise ValueError(f"The photo array holds NaN or infinite values ({int((~np.isfinite(a)).sum())} of "
                         f"{a.size}); a photo needs a number in every pixel. Fill or drop them first.")
    lo, hi = float(a.min()), float(a.max())
    if lo < 0 or hi > 255:
        guess = (" It looks like [-1, 1] values: use (arr + 1) / 2 first." if lo >= -1 and hi <= 1
                 else " It looks like 16-bit pixels: divide by 257 first." if lo >= 0 and hi <= 65535
                 else "")
        raise ValueError(f"The photo array's values span [{lo:.4g}, {hi:.4g}]; a photo array holds floats in "
                         f"[0, 1] or pixels 0..255.{guess}")
    if floats and hi <= 1.0:  # whole numbers (int arrays) are pixels 0..255 already
        a = a * 255.0
    return np.round(a).astype(np.uint8)


# --------------------------------------------------------------------------- the upload panel
def _uploaded_files(value) -> list[tuple[str, bytes]]:
    """(name, bytes) from a FileUpload value: a tuple of dicts (ipywidgets 8) or a dict
    name -> {"content": ...} (ipywidgets 7)."""
    if isinstance(value, dict):
        return [(name, bytes(item["content"])) for name, item in value.items()]
    return [(item["name"], bytes(item["content"])) for item in value]


class PhotoPicker:
    """The photo a notebook edits: ``default`` (the bundled photo) until you choose your own.

    * ``picker.use("me.jpg")`` or ``picker.use("https://...")``: a path or a URL;
    * ``picker.ask()``: in Colab a file chooser (``google.colab.files.upload``); in Jupyter
      the panel's Upload button (``ipywidgets.FileUpload``);
    * ``picker.use_bytes(name, data)``: what both upload routes call.

    ``picker.photo`` is the current photo, scaled with :func:`load_photo` (``max_side``);
    ``picker.name`` a short name for it. A file that cannot be used leaves the previous
    photo in place and says why in the panel.
    """

    def __init__(self, default: Image.Image, max_side: int | None = 512, default_name: str = "bundled photo"):
        import ipywidgets as w

        self.max_side = max_side
        self.photo = load_photo(default, max_side)
        self.name = default_name
        self.upload = w.FileUpload(accept="image/*", multiple=False, description="Upload a photo")
        self.upload.observe(self._on_upload, names="value")
        self.status = w.Label()
        self.preview = w.Image(format="png", width=192)
        self.widget = w.VBox([w.HBox([self.upload, self.status]), self.preview])
        self._show()

    def use(self, source, name: str | None = None) -> Image.Image:
        """Use a path, URL, bytes or image as the photo (errors are raised, not shown)."""
        self.photo = load_photo(source, self.max_side)
        self.name = name or (Path(str(source)).name if isinstance(source, (str, Path)) else "your photo")
        self._show()
        return self.photo

    def use_bytes(self, name: str, data: bytes) -> Image.Image:
        return self.use(bytes(data), name=name)

    def ask(self) -> None:
        """Colab: open the browser's file chooser now (the cell waits for the upload).
        Elsewhere: the panel's Upload button does it; this only says so."""
        if in_colab():
            from google.colab import files  # only in Colab

            for name, data in files.upload().items():
                self.use_bytes(name, data)
                break
        else:
            self.status.value = "Press 'Upload a photo' in this panel, then re-run the cells below."

    def _on_upload(self, change) -> None:
        for name, data in _uploaded_files(change["new"]):
            try:
                self.use_bytes(name, data)
            except (ValueError, TypeError) as err:
                self.status.value = f"Not used: {err}"
            break

    def _show(self) -> None:
        buf = io.BytesIO()
        self.photo.save(buf, format="PNG")
        self.preview.value = buf.getvalue()
        self.status.value = (f"Using {self.name} ({self.photo.width}x{self.photo.height}). "
                             "Upload another, then re-run the cells below.")

    def _ipython_display_(self):  # a bare `picker` in a cell shows the panel
        from IPython.display import display

        display(self.widget)


def offer_download(paths: Iterable[str | Path], name: str = "results") -> Path | None:
    """Colab: zip ``paths`` (beside the first, never overwriting) and send the zip to the
    browser. Elsewhere: print where the files are. Returns the zip's path in Colab."""
    paths = [Path(p) for p in paths]
    if not paths:
        raise ValueError("offer_download got no files: save some results first.")
    if not in_colab():
        print(f"{len(paths)} files in {paths[0].parent}:", ", ".join(p.name for p in paths))
        return None
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for p in paths:
            zf.write(p, arcname=p.name)
    archive = write_unique(paths[0].parent, name, ".zip", buf.getvalue())
    from google.colab import files  # only in Colab

    files.download(str(archive))
    return archive
