"""Black borders (letterboxing, pillarboxing) cut off a keyframe before it is embedded.

A copy of a video with black bars is the same footage; with the bars, the model sees a different
picture (CLIP's centre crop keeps bars above and below). Cut per keyframe, as ffmpeg's cropdetect
decides: a border row or column is black when its mean brightness is at most BLACK_LEVEL. The same
cut applies to the copy without bars, so both are embedded from the same pixels.
"""
import numpy as np

__all__ = ['without_black_borders']

BLACK_LEVEL = 24  # mean of a row or column (0-255, brightest channel) at or below which it is a black bar (cropdetect's limit)
MIN_KEPT = 0.4  # a cut that would keep less of either side than this is a dark picture, not bars: left whole


def without_black_borders(image: np.ndarray) -> np.ndarray:
    """The part of an RGB uint8 image (H x W x 3) inside its black borders (a view); the image itself when
    it has none, or when it is dark nearly all over."""
    height, width = image.shape[:2]
    if not _black(image[0]) and not _black(image[-1]) and not _black(image[:, 0]) and not _black(image[:, -1]):
        return image  # most keyframes: no black edge, decided from four lines
    brightness = np.maximum(np.maximum(image[..., 0], image[..., 1]), image[..., 2])  # max(axis=2) is 30x slower
    rows = np.flatnonzero(brightness.sum(axis=1, dtype=np.uint32) > BLACK_LEVEL * width)
    columns = np.flatnonzero(brightness.sum(axis=0, dtype=np.uint32) > BLACK_LEVEL * height)
    if not len(rows) or not len(columns):
        return image
    top, bottom, left, right = rows[0], rows[-1] + 1, columns[0], columns[-1] + 1
    if (bottom - top) < MIN_KEPT * height or (right - left) < MIN_KEPT * width:
        return image
    if (top, bottom, left, right) == (0, height, 0, width):
        return image
    return image[top:bottom, left:right]


def _black(line: np.ndarray) -> bool:
    """Whether a row or column (N x 3) is a black bar's."""
    return float(line.max(axis=1).mean()) <= BLACK_LEVEL
