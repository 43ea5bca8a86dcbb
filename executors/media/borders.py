"""Black borders (letterboxing, pillarboxing) cut off a video's keyframes before they are embedded.

A copy of a video with black bars is the same footage; with the bars, the model sees a different
picture (CLIP's centre crop keeps bars above and below). As ffmpeg's cropdetect, over a run of
keyframes: a border row or column is a bar when it is black (mean brightness at most BLACK_LEVEL) in
every keyframe, so a dark scene (night, a game of life on black) is not cut differently from one
keyframe to the next, and the copy without bars is embedded from the same pixels. Bars are centred
(equal above and below, left and right): black margins that are not are dark content, left as they are
(a short clip of a dark scene would otherwise be cut unlike the video it comes from).
"""
import numpy as np

__all__ = ['content_box']

BLACK_LEVEL = 24  # mean of a row or column (0-255, brightest channel) at or below which it is black (cropdetect's limit)
MIN_KEPT = 0.4  # a cut that would keep less of either side than this is a dark video, not bars: nothing is cut
CENTRED = 0.02  # opposite bars differ by at most this share of the side (and 2 pixels) when they are bars


def content_box(images: list[np.ndarray]) -> tuple[slice, slice] | None:
    """The (rows, columns) inside the black bars shared by every RGB uint8 image (all H x W x 3, as a
    video's keyframes are), or None when there are none."""
    if not images or any(_edges_lit(image) for image in images):  # most videos: told by their first keyframe's edges
        return None
    height, width = images[0].shape[:2]
    rows, columns = np.zeros(height, bool), np.zeros(width, bool)
    for image in images:
        brightness = np.maximum(np.maximum(image[..., 0], image[..., 1]), image[..., 2])  # max(axis=2): 30x slower
        rows |= brightness.sum(axis=1, dtype=np.uint32) > BLACK_LEVEL * width
        columns |= brightness.sum(axis=0, dtype=np.uint32) > BLACK_LEVEL * height
    lit_rows, lit_columns = np.flatnonzero(rows), np.flatnonzero(columns)
    if not len(lit_rows) or not len(lit_columns):
        return None
    top, bottom, left, right = lit_rows[0], lit_rows[-1] + 1, lit_columns[0], lit_columns[-1] + 1
    if (bottom - top) < MIN_KEPT * height or (right - left) < MIN_KEPT * width:
        return None
    if not _centred(top, height - bottom, height):
        top, bottom = 0, height
    if not _centred(left, width - right, width):
        left, right = 0, width
    if (top, bottom, left, right) == (0, height, 0, width):
        return None
    return slice(top, bottom), slice(left, right)


def _centred(before: int, after: int, side: int) -> bool:
    return abs(before - after) <= CENTRED * side + 2


def _edges_lit(image: np.ndarray) -> bool:
    """Whether no edge of the image is black (then it has no bars)."""
    return not any(float(line.max(axis=1).mean()) <= BLACK_LEVEL for line in (image[0], image[-1], image[:, 0], image[:, -1]))
