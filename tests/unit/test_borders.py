"""Black bars cut off a video's keyframes before they are embedded (executors/media/borders.py)."""
import numpy as np

from executors.media.borders import content_box


def picture(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(40, 256, (height, width, 3), dtype=np.uint8)


def boxed(content: np.ndarray, seed: int = 1) -> np.ndarray:
    """`content` letterboxed and pillarboxed in 224 x 398, the bars not quite black (as decoded)."""
    frame = np.random.default_rng(seed).integers(0, 12, (224, 398, 3), dtype=np.uint8)
    frame[28:196, 50:348] = content
    return frame


def test_bars_every_keyframe_has_are_cut_even_with_compression_noise():
    contents = [picture(168, 298, seed) for seed in range(3)]
    frames = [boxed(c, seed) for seed, c in enumerate(contents)]
    box = content_box(frames)
    assert all(np.array_equal(f[box], c) for f, c in zip(frames, contents))


def test_keyframes_without_bars_are_left_whole():
    assert content_box([picture(224, 298, seed) for seed in range(3)]) is None


def test_a_dark_scene_is_cut_only_where_every_keyframe_is_black():
    # a game of life on black: each keyframe's lit cells lie elsewhere; only what none of them lights is a bar
    frames = [np.zeros((100, 100, 3), np.uint8) for _ in range(2)]
    frames[0][10:50, 10:90] = 200
    frames[1][50:90, 20:80] = 200
    assert content_box(frames) == (slice(10, 90), slice(10, 90))


def test_a_nearly_black_video_is_left_whole():
    title = np.zeros((224, 224, 3), np.uint8)
    title[100:120, 100:130] = 200  # a small title on black: not bars around a picture
    assert content_box([title]) is None and content_box([np.zeros((224, 224, 3), np.uint8)]) is None


def test_black_margins_that_are_not_centred_are_dark_content_not_bars():
    frame = picture(100, 100)
    frame[:30] = 0  # black above only: the top of a dark scene
    assert content_box([frame]) is None
    frame[-30:] = 0  # and as much below: letterboxed
    assert content_box([frame]) == (slice(30, 70), slice(0, 100))
