"""What stays put on a moving picture: overlaid text (subtitles, captions, lower thirds, slides) keeps its
pixels from one keyframe to the next while the picture behind it moves.

Two keyframes are compared by their grey edges (pixels whose 3 x 3 neighbourhood spans at least EDGE
grey levels, as a glyph's outline does): an edge in both, at the same grey level within SAME, is
steady. On a moving picture only overlays and the slowest parts of the picture have steady edges, so
the ScreenTextReader looks for new text only there, and a line whose edges are still in place is
still shown without being read again.
"""
from dataclasses import dataclass

import numpy as np

EDGE = 96  # grey levels across a 3 x 3 neighbourhood: the outline of a glyph (subtitles: 120-140)
SAME = 16  # grey levels two keyframes' pixels may differ by and still be the same (compression noise)
SHOWN = 0.5  # share of a line's edges that must still be in place (measured: 0.65-1.0 kept, 0.12-0.16 replaced)


@dataclass(frozen=True)
class Edges:
    """A picture's grey levels (uint8) and where its edges are."""

    grey: np.ndarray
    edges: np.ndarray

    @classmethod
    def of(cls, rgb: np.ndarray) -> 'Edges':
        grey = ((rgb[..., 0].astype(np.uint16) + 2 * rgb[..., 1] + rgb[..., 2]) >> 2).astype(np.uint8)
        return cls(grey, _spread(grey) >= EDGE)

    def crop(self, box: tuple[int, int, int, int]) -> 'Edges':
        """The part inside a (top, bottom, left, right) pixel region."""
        top, bottom, left, right = box
        return Edges(self.grey[top:bottom, left:right], self.edges[top:bottom, left:right])


def steady(a: Edges, b: Edges) -> np.ndarray:
    """Where two pictures of one size share an edge at the same grey level."""
    return a.edges & b.edges & (np.abs(a.grey.astype(np.int16) - b.grey) <= SAME)


def still_shown(then: Edges, now: Edges) -> bool:
    """Whether the text whose pixels were `then` is still in place in `now` (the same region of a later keyframe):
    by its edges, or for text too faint to have any, by its grey levels."""
    if then.grey.shape != now.grey.shape or not then.grey.size:
        return False
    outline = int(then.edges.sum())
    if not outline:
        return float(np.abs(then.grey.astype(np.int16) - now.grey).mean()) <= SAME
    return int(steady(then, now).sum()) >= SHOWN * outline


def _spread(grey: np.ndarray) -> np.ndarray:
    """Each pixel's 3 x 3 neighbourhood's largest grey level less its smallest (0 on the border)."""
    spread = np.zeros_like(grey)
    if min(grey.shape) < 3:
        return spread
    high = np.maximum(np.maximum(grey[:, :-2], grey[:, 1:-1]), grey[:, 2:])
    high = np.maximum(np.maximum(high[:-2], high[1:-1]), high[2:])
    low = np.minimum(np.minimum(grey[:, :-2], grey[:, 1:-1]), grey[:, 2:])
    low = np.minimum(np.minimum(low[:-2], low[1:-1]), low[2:])
    spread[1:-1, 1:-1] = high - low
    return spread
