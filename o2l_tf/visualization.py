"""Rendering CT slices for people: windowing, label contours, montages and PNG files.

Used by ``o2l synth --preview``, ``o2l inspect-records`` and the prediction previews. Images are
shown in the radiological convention: anterior at the top, the patient's right on the image's left.
"""

from __future__ import annotations

import os
import struct
import zlib

import numpy as np
from scipy import ndimage

from o2l_tf.data.schema import PAPER_HU_WINDOW

LIVER_WINDOW = (-160.0, 240.0)  # W400 / L40, the usual abdominal soft-tissue window
LIVER_COLOR = (40, 220, 60)
LESION_COLOR = (255, 40, 40)
BOX_COLORS = {"organ": (255, 210, 0), "lesion": (0, 200, 255)}


def window(hu: np.ndarray, low: float = LIVER_WINDOW[0], high: float = LIVER_WINDOW[1]) -> np.ndarray:
    """Map HU to uint8 grey levels through a CT window."""
    scaled = (np.asarray(hu, np.float32) - low) / (high - low)
    return (np.clip(scaled, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def radiological(slice_ras: np.ndarray) -> np.ndarray:
    """An axial slice indexed [right, anterior] shown with anterior up and the patient's right on the left."""
    return np.asarray(slice_ras).T[::-1, ::-1]


def contour(mask: np.ndarray) -> np.ndarray:
    """One-pixel inner boundary of a 2D mask."""
    mask = np.asarray(mask, bool)
    return mask & ~ndimage.binary_erosion(mask, border_value=0)


def overlay(grey: np.ndarray, label: np.ndarray | None = None) -> np.ndarray:
    """RGB image of a grey slice with liver (label >= 1) and lesion (label == 2) contours."""
    rgb = np.repeat(np.asarray(grey, np.uint8)[..., None], 3, axis=-1)
    if label is not None:
        rgb[contour(label >= 1)] = LIVER_COLOR
        rgb[contour(label == 2)] = LESION_COLOR
    return rgb


def draw_box(rgb: np.ndarray, row0: int, col0: int, row1: int, col1: int, color) -> None:
    """Outline an inclusive pixel rectangle in place (clipped to the image)."""
    rows, cols = rgb.shape[:2]
    r0, r1 = max(0, row0), min(rows - 1, row1)
    c0, c1 = max(0, col0), min(cols - 1, col1)
    if r0 > r1 or c0 > c1:
        return
    rgb[r0, c0:c1 + 1] = color
    rgb[r1, c0:c1 + 1] = color
    rgb[r0:r1 + 1, c0] = color
    rgb[r0:r1 + 1, c1] = color


def upscale(image: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour enlargement, so small phantoms stay readable."""
    if factor <= 1:
        return image
    return np.repeat(np.repeat(image, factor, axis=0), factor, axis=1)


def montage(tiles: list[np.ndarray], columns: int, gap: int = 4) -> np.ndarray:
    """Arrange RGB tiles (any sizes) on a dark grid, top-left aligned in equal cells."""
    if not tiles:
        raise ValueError("montage needs at least one tile")
    columns = max(1, min(columns, len(tiles)))
    rows = -(-len(tiles) // columns)
    cell_h = max(t.shape[0] for t in tiles)
    cell_w = max(t.shape[1] for t in tiles)
    canvas = np.full((rows * cell_h + (rows + 1) * gap, columns * cell_w + (columns + 1) * gap, 3), 24, np.uint8)
    for n, tile in enumerate(tiles):
        r, c = divmod(n, columns)
        top, left = gap + r * (cell_h + gap), gap + c * (cell_w + gap)
        canvas[top:top + tile.shape[0], left:left + tile.shape[1]] = tile
    return canvas


def axial_tile(volume: np.ndarray, label: np.ndarray, k: int, min_size: int) -> np.ndarray:
    """Slice ``k`` of canonical arrays in the liver window with contours, enlarged to at least ``min_size``."""
    factor = max(1, -(-min_size // volume.shape[0]))
    return upscale(overlay(window(radiological(volume[:, :, k])), radiological(label[:, :, k])), factor)


def volume_preview(volume: np.ndarray, label: np.ndarray, spacing, tiles: int = 6, min_tile: int = 256) -> np.ndarray:
    """A montage of axial slices through the liver (dome to tip) and one coronal reformat (canonical arrays)."""
    liver_z = np.nonzero(label.any(axis=(0, 1)))[0]
    low, high = (liver_z[0], liver_z[-1]) if liver_z.size else (0, volume.shape[2] - 1)
    heights = np.unique(np.linspace(high, low, tiles).round().astype(int))[::-1]
    images = [axial_tile(volume, label, k, min_tile) for k in heights]
    # Coronal cut through the liver's centre: superior at the top, patient's right on the left.
    liver_rows = np.nonzero(label.any(axis=(0, 2)))[0]
    row = int(liver_rows.mean()) if liver_rows.size else volume.shape[1] // 2
    stretch = spacing[2] / spacing[0]
    z_index = np.clip(np.round(np.arange(0, volume.shape[2], 1 / stretch)).astype(int), 0, volume.shape[2] - 1)
    coronal_hu = volume[::-1, row, :][:, z_index].T[::-1]
    coronal_label = label[::-1, row, :][:, z_index].T[::-1]
    images.append(upscale(overlay(window(coronal_hu), coronal_label), max(1, -(-min_tile // volume.shape[0]))))
    return montage(images, columns=4)


def encode_png(rgb: np.ndarray) -> bytes:
    """Encode an HxWx3 (or HxW) uint8 array as PNG bytes (8-bit, no interlace)."""
    image = np.asarray(rgb, np.uint8)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=-1)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 image, got shape {image.shape}")
    height, width = image.shape[:2]
    raw = np.concatenate([np.zeros((height, 1), np.uint8), image.reshape(height, width * 3)], axis=1)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw.tobytes(), 6)) + chunk(b"IEND", b"")


def write_png(path: str, rgb: np.ndarray) -> None:
    """Write a PNG atomically (a temporary name renamed when complete)."""
    from o2l_tf.io_utils import atomic_write_bytes

    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    atomic_write_bytes(path, encode_png(rgb))


def training_panel(image, target, boxes, prediction, hu_window=PAPER_HU_WINDOW) -> np.ndarray:
    """TensorBoard's image panel: CT window | label or soft label | box outlines | prediction, for one training
    example (canonical arrays).

    ``hu_window``: the records' clipping window, to turn the [0, 1] network input back into HU.
    """
    low, high = hu_window
    hu = image[..., 1] * (high - low) + low
    grey = window(radiological(hu))
    label = radiological(np.argmax(target, -1) * (target.sum(-1) > 0.5))
    predicted = radiological(np.argmax(prediction, -1))
    colours = np.array([[0, 0, 0], LIVER_COLOR, LESION_COLOR], np.float32)

    def tint(classes, weights=None):
        rgb = np.repeat(grey[..., None], 3, -1).astype(np.float32)
        alpha = 0.45 * (classes > 0) if weights is None else 0.6 * weights
        return (rgb * (1 - alpha[..., None]) + colours[classes] * alpha[..., None]).astype(np.uint8)

    soft_weight = radiological(1.0 - target[..., 0]) if target.shape[-1] == 3 else None
    boxed = np.repeat(grey[..., None], 3, -1)
    for channel, kind in ((0, "organ"), (1, "lesion")):
        mask = radiological(boxes[..., channel] > 0.5)
        boxed[contour(mask)] = BOX_COLORS[kind]
    return np.concatenate([np.repeat(grey[..., None], 3, -1), tint(label, soft_weight), boxed, tint(predicted)], 1)
