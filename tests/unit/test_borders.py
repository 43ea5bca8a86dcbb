"""Black bars cut off a keyframe before it is embedded (executors/media/borders.py)."""
import numpy as np

from executors.media.borders import without_black_borders


def picture(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(40, 256, (height, width, 3), dtype=np.uint8)


def test_letterbox_and_pillarbox_bars_are_cut_even_with_compression_noise():
    content = picture(168, 298)
    boxed = np.random.default_rng(1).integers(0, 12, (224, 398, 3), dtype=np.uint8)  # not quite black, as decoded
    boxed[28:196, 50:348] = content
    assert np.array_equal(without_black_borders(boxed), content)


def test_a_picture_without_bars_is_returned_as_it_is():
    image = picture(224, 298)
    assert without_black_borders(image) is image


def test_dark_edges_inside_the_picture_stay_when_the_row_is_not_black_on_average():
    image = picture(100, 100)
    image[0, :60] = 0  # a dark patch at the top edge: the row's mean is still bright
    assert without_black_borders(image).shape == (100, 100, 3)


def test_a_nearly_black_picture_is_left_whole():
    image = np.zeros((224, 224, 3), np.uint8)
    image[100:120, 100:130] = 200  # a small title on black: not bars around a picture
    assert without_black_borders(image) is image
    black = np.zeros((224, 224, 3), np.uint8)
    assert without_black_borders(black) is black
