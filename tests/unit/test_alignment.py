"""Aligning one run of keyframes inside another: the offset, the score, and when pictures say nothing."""
import numpy as np
import pytest

from executors.retrieval.alignment import align


def trajectory(seconds: int, seed: int, dim: int = 64) -> np.ndarray:
    """Unit vectors drifting smoothly, one per second (a moving shot), as CLIP keyframes of real footage do."""
    rng = np.random.default_rng(seed)
    steps = np.cumsum(rng.normal(size=(seconds, dim)), axis=0) + rng.normal(size=dim) * 8
    return steps / np.linalg.norm(steps, axis=1, keepdims=True)


def noisy(vectors: np.ndarray, seed: int, noise: float = 0.02) -> np.ndarray:
    """The same pictures re-encoded: a little noise on each embedding."""
    out = vectors + np.random.default_rng(seed).normal(scale=noise, size=vectors.shape)
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def test_a_trimmed_excerpt_is_found_at_its_offset_despite_missing_keyframes():
    video = trajectory(60, seed=1)
    keep = [i for i in range(20, 32) if i not in (24, 27)]  # 12 s from 20 s, two keyframes lost
    clip_times = np.array(keep, float) - 20 + 0.3  # its own clock, sampled a little later
    found = align(clip_times, noisy(video[keep], 2), np.arange(60.0), video)
    assert abs(found.offset - 19.7) <= 1.0 and found.distinct and found.score > 0.95


def test_a_clip_from_other_footage_does_not_align():
    assert align(np.arange(10.0), trajectory(10, seed=3), np.arange(60.0), trajectory(60, seed=1)) is None


@pytest.mark.parametrize('noise', [0.001, 0.02])  # 0.02: each keyframe at cosine ~0.98 to the picture (re-encoded)
def test_a_static_picture_aligns_nowhere_in_particular(noise):
    still = np.tile(trajectory(1, seed=4), (30, 1))
    for seed in range(20):
        found = align(np.arange(10.0), noisy(still[:10], 5 + seed, noise), np.arange(30.0), noisy(still, 50 + seed, noise))
        assert found is not None and not found.distinct


def test_a_shared_intro_matches_only_its_own_span():
    intro = trajectory(4, seed=7)
    first = np.vstack([intro, trajectory(40, seed=8)])
    second = np.vstack([noisy(intro, 9), trajectory(30, seed=10)])
    found = align(np.arange(34.0), second, np.arange(44.0), first)
    assert abs(found.offset) <= 1.0 and found.matched == (0.0, 3.0) and found.matched_score > 0.95


def test_a_copy_is_distinct_even_when_every_keyframe_of_the_video_looks_alike():
    # CLIP's keyframes of one video share much (place, light, people): cosine ~0.9 between any two
    rng = np.random.default_rng(12)
    walk = np.cumsum(rng.normal(size=(60, 64)), axis=0)
    alike = rng.normal(size=64) / 8 + 0.6 * walk / np.linalg.norm(walk, axis=1, keepdims=True)  # unit centre + drift
    alike /= np.linalg.norm(alike, axis=1, keepdims=True)
    far = alike[:30] @ alike[30:].T
    assert 0.85 < far.mean() < 0.95  # the premise
    found = align(np.arange(20.0), noisy(alike[10:30], 13, 0.01), np.arange(60.0), alike)
    assert found.distinct and abs(found.offset - 10.0) <= 1.0


def test_pictures_a_model_cannot_tell_apart_align_nowhere_in_particular():
    # an untrained image tower gives every keyframe of every video almost the same vector (cosine ~0.9999)
    base = trajectory(1, seed=14)
    one, other = (base + 0.01 * trajectory(30, seed=seed) for seed in (15, 16))
    one, other = (v / np.linalg.norm(v, axis=1, keepdims=True) for v in (one, other))
    assert (one @ other.T).min() > 0.9998  # the premise
    found = align(np.arange(10.0), other[5:15], np.arange(30.0), one)
    assert found is not None and not found.distinct


def test_videos_of_a_few_keyframes_cannot_show_where_they_align():
    # bars, a test card, a fractal of 2-4 s under an untrained tower: no offset elsewhere to compare with
    base = trajectory(1, seed=17)
    one, other = (base + 0.02 * trajectory(4, seed=seed) for seed in (18, 19))
    one, other = (v / np.linalg.norm(v, axis=1, keepdims=True) for v in (one, other))
    found = align(np.arange(3.0), other[:3], np.arange(4.0), one)
    assert found is not None and not found.distinct
