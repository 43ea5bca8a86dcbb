"""The near-duplicate check: has a keyframe changed since the last one that was worked on?

The ImageEncoder uses it to give a static keyframe its predecessor's embedding (mean difference of
32 x 32 grey thumbnails); the ScreenTextReader to read text only where the picture changed (largest
difference of finer thumbnails, since a new subtitle line changes a few cells, not the mean).
"""
import numpy as np

THUMBNAIL_SIDE = 32  # the ImageEncoder's test compares 32 x 32 grey thumbnails


class NearDuplicates:
    """Feed keyframes in order; `source(image)` is the index of the keyframe whose work this one takes.

    A keyframe is kept (its own index) unless its thumbnail differs from the last kept keyframe's by
    less than `below` grey levels (0-255), by the `statistic` 'mean' or 'max' of the absolute cell
    differences over a `side` x `side` thumbnail. Comparing with the last kept keyframe, not the
    previous one, lets a slow drift (a pan, a fade) add up until it is kept again. `below` 0 keeps all.
    The state carries across calls, so a video handed on in pieces is compared across their seams.
    """

    def __init__(self, below: float, side: int = THUMBNAIL_SIDE, statistic: str = 'mean'):
        if statistic not in ('mean', 'max'):
            raise ValueError(f"statistic must be 'mean' or 'max', not {statistic!r}")
        self.below, self.side, self.statistic = float(below), int(side), statistic
        self.count = 0
        self.changed: np.ndarray | None = None  # the cells that changed when a keyframe was last kept (None: the first)
        self._kept: tuple[int, np.ndarray] | None = None

    def source(self, image: np.ndarray) -> int:
        index, self.count = self.count, self.count + 1
        if self.below <= 0:
            return index
        thumb = thumbnail(image, self.side)
        self.changed = None
        if self._kept is not None:
            difference = np.abs(thumb - self._kept[1])
            if float(difference.max() if self.statistic == 'max' else difference.mean()) < self.below:
                return self._kept[0]
            self.changed = difference >= self.below
        self._kept = (index, thumb)
        return index


def reuse_sources(images: list[np.ndarray], reuse_below: float) -> list[int]:
    """For each image, the index of the image whose embedding it takes: its own, or that of the last
    image kept before it when their 32 x 32 thumbnails differ by less than `reuse_below` grey levels
    (mean absolute difference)."""
    check = NearDuplicates(reuse_below)
    return [check.source(image) for image in images]


def thumbnail(image: np.ndarray, side: int = THUMBNAIL_SIDE) -> np.ndarray:
    """A `side` x `side` grey float32 picture of an RGB uint8 image: box averages of its cells, so
    sensor noise averages out and a change anywhere in the frame still shows."""
    height, width = image.shape[:2]
    rows = np.linspace(0, height, side + 1).astype(int)
    cols = np.linspace(0, width, side + 1).astype(int)
    if image.ndim == 2:
        image = image[..., None]
    if height < side or width < side:
        picked = image[np.minimum(rows[:-1], height - 1)][:, np.minimum(cols[:-1], width - 1)]
        return picked.mean(axis=2, dtype=np.float32)
    sums = np.add.reduceat(np.add.reduceat(image, rows[:-1], axis=0, dtype=np.uint32), cols[:-1], axis=1).sum(axis=2)
    return sums.astype(np.float32) / (image.shape[2] * np.outer(np.diff(rows), np.diff(cols)))
