"""Tokenisers of the LRA tasks: ListOps symbols, bytes and pixel intensities -> integer ids.

Id 0 is padding everywhere. Each tokeniser has a version string that is part of the tensor-cache
key, so changing how ids are assigned invalidates old caches instead of silently reusing them.

* ListOps: the 15 symbols (digits, `[MIN`, `[MAX`, `[MED`, `[SM`, `]`) get ids 1..15; the round
  parentheses that only encode the binary bracketing are dropped (as LRA does).
* Bytes (Text, Retrieval): UTF-8 byte b -> id b + 1 (LRA's ByteTextEncoder).
* Pixels (Image, Pathfinder, Path-X): intensity v -> id v + 1, so black pixels are real tokens;
  the legacy LRA mapping (v -> v, black is padding) with `pixel_zero_is_padding=True`.
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from lra.tasks.base import LRADataset

LISTOPS_SYMBOLS: tuple[str, ...] = (
    "0",
    "1",
    "2",
    "3",
    "4",
    "5",
    "6",
    "7",
    "8",
    "9",
    "[MIN",
    "[MAX",
    "[MED",
    "[SM",
    "]",
)
LISTOPS_VOCAB_SIZE = len(LISTOPS_SYMBOLS) + 1  # + padding id 0
LISTOPS_TOKENIZER = "listops-v1"
BYTE_VOCAB_SIZE = 257
BYTE_TOKENIZER = "bytes-v1"
PIXEL_VOCAB_SIZE = 257
GRAYSCALE_WEIGHTS = (0.2989, 0.5870, 0.1140)  # tf.image.rgb_to_grayscale, as LRA's Image task

_LISTOPS_IDS = {symbol: i + 1 for i, symbol in enumerate(LISTOPS_SYMBOLS)}
# One character per symbol, so that a whole expression converts through a byte lookup table.
_LISTOPS_CODES = {"[MIN": "a", "[MAX": "b", "[MED": "c", "[SM": "d", "]": "e"}
_LISTOPS_LUT = np.zeros(256, dtype=np.uint8)
for _symbol, _id in _LISTOPS_IDS.items():
    _LISTOPS_LUT[ord(_LISTOPS_CODES.get(_symbol, _symbol))] = _id
_LISTOPS_VALID = re.compile(r"\s*(?:(?:\[MIN|\[MAX|\[MED|\[SM|\]|[0-9])(?:\s+|$))*")
_LISTOPS_COMPACT = re.compile(r"\[MIN|\[MAX|\[MED|\[SM|\]|\s+")


def pixel_tokenizer(pixel_zero_is_padding: bool) -> str:
    return "pixels-legacy-v1" if pixel_zero_is_padding else "pixels-shift1-v1"


def id_dtype(vocab_size: int) -> np.dtype:
    """The smallest integer dtype that holds ids below `vocab_size` (uint8 or int16)."""
    return np.dtype(np.uint8) if vocab_size <= 256 else np.dtype(np.int16)


def listops_ids(expression: str) -> np.ndarray:
    """Token ids (uint8) of one ListOps expression; parentheses are dropped.

    Raises ValueError naming the first unknown token.
    """
    text = expression.replace("(", " ").replace(")", " ")
    if not _LISTOPS_VALID.fullmatch(text):
        bad = next(t for t in text.split() if t not in _LISTOPS_IDS)
        raise ValueError(f"unknown ListOps token {bad!r}")
    compact = _LISTOPS_COMPACT.sub(lambda m: _LISTOPS_CODES.get(m.group(0), ""), text)
    return _LISTOPS_LUT[np.frombuffer(compact.encode("ascii"), dtype=np.uint8)]


def listops_decode(ids: np.ndarray) -> str:
    """The symbols of a ListOps id sequence (padding dropped), space separated."""
    return " ".join(LISTOPS_SYMBOLS[int(i) - 1] for i in ids if i != 0)


def byte_ids(data: bytes, max_len: int) -> np.ndarray:
    """Byte b -> id b + 1 (int16), truncated to `max_len`."""
    return np.frombuffer(data[:max_len], dtype=np.uint8).astype(np.int16) + 1


def byte_decode(ids: np.ndarray) -> str:
    """The text of a byte-id sequence (padding dropped); invalid UTF-8 is replaced."""
    ids = np.asarray(ids)
    return bytes((ids[ids != 0] - 1).astype(np.uint8)).decode("utf-8", errors="replace")


def pixel_ids(pixels: np.ndarray, pixel_zero_is_padding: bool) -> np.ndarray:
    """Flattened intensities (uint8, any shape) -> ids: v + 1 (int16), or v (uint8) in legacy mode."""
    flat = np.asarray(pixels, dtype=np.uint8).reshape(-1)
    return flat.copy() if pixel_zero_is_padding else flat.astype(np.int16) + 1


def pixel_values(ids: np.ndarray, pixel_zero_is_padding: bool) -> np.ndarray:
    """Inverse of `pixel_ids`: intensities 0..255 (uint8)."""
    ids = np.asarray(ids).astype(np.int32)
    return (ids if pixel_zero_is_padding else np.clip(ids - 1, 0, 255)).astype(np.uint8)


def rgb_to_gray(images: np.ndarray) -> np.ndarray:
    """[..., 3] uint8 RGB -> [...] uint8 gray following `tf.image.rgb_to_grayscale` on uint8 images
    (weighted sum of float32 values in [0, 1], scaled by 255.5 and truncated), as LRA's Image task."""
    rgb = np.asarray(images, dtype=np.float32) * np.float32(1.0 / 255.0)
    gray = rgb @ np.asarray(GRAYSCALE_WEIGHTS, dtype=np.float32)
    return np.clip(gray * np.float32(255.5), 0, 255).astype(np.uint8)


def pad_rows(rows: list[np.ndarray], seq_len: int, dtype: np.dtype) -> np.ndarray:
    """Right-pad (with 0) or truncate each row to `seq_len`; [n, seq_len] of `dtype`."""
    out = np.zeros((len(rows), seq_len), dtype=dtype)
    for i, row in enumerate(rows):
        row = row[:seq_len]
        out[i, : row.shape[0]] = row
    return out


def ascii_image(values: np.ndarray, side: int, max_width: int = 64) -> str:
    """A small text rendering of a square grayscale image (for `lra data info`)."""
    image = np.asarray(values, dtype=np.float32).reshape(side, side)
    step = max(1, -(-side // max_width))
    image = image[::step, ::step]
    ramp = " .:-=+*#%@"
    index = np.clip((image / 256.0 * len(ramp)).astype(int), 0, len(ramp) - 1)
    return "\n".join("".join(ramp[i] for i in row) for row in index)


# Renderings of one example for `lra data info` (`TaskSpec.render`).
def render_listops(ds: LRADataset, index: int, pixel_zero_is_padding: bool = False) -> str:
    """The expression of ListOps example `index`."""
    return listops_decode(ds.inputs[index].numpy())


def render_bytes(ds: LRADataset, index: int, pixel_zero_is_padding: bool = False) -> str:
    """The text of byte example `index` (both documents of a dual-input one), 400 characters each."""
    text = byte_decode(ds.inputs[index].numpy())[:400]
    if ds.inputs2 is not None:
        text += "\n--- document 2 ---\n" + byte_decode(ds.inputs2[index].numpy())[:400]
    return text


def render_pixels(ds: LRADataset, index: int, pixel_zero_is_padding: bool = False) -> str:
    """Pixel example `index` as an ASCII image (side: the dataset's `image_side`, else the square root)."""
    tokens = ds.inputs[index].numpy()
    side = int(ds.info.get("image_side") or math.isqrt(tokens.shape[0]))
    return ascii_image(pixel_values(tokens[: side * side], pixel_zero_is_padding), side)
