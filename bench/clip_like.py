"""Synthetic keyframe and query embeddings with the statistics of CLIP ViT-B/32 (512-d, unit length).

Each assumption, and the figure it is tuned to (bench/ann.py measures and reports them again):
- Images lie in a narrow cone: every keyframe is IMAGE_MEAN_WEIGHT * m_I + its semantic part, then
  normalised; the weight equals the semantic part's root-mean-square norm, so the mean pairwise
  cosine of two random keyframes is ~0.5 (ViT-B/32 image embeddings: 0.45-0.55).
- The semantic part has a power-law spectrum: the variance along its i-th principal direction falls
  as i^-SPECTRUM_EXPONENT (CLIP's embeddings have a few dominant directions and a long tail), in a
  random orthonormal basis.
- A topic hierarchy: TOPICS topics, SUBTOPICS_PER_TOPIC subtopics each; a video belongs to one
  subtopic; its variance is split between topic, subtopic, video and shot (LEVEL_VARIANCE).
- Videos are smooth trajectories with shot cuts: keyframes at 1 per second; a shot lasts a geometric
  number of keyframes (mean MEAN_SHOT); inside a shot the embedding drifts as a random walk (DRIFT per
  keyframe) plus a little per-frame noise (FRAME_NOISE); a cut draws a new shot around the video.
- Text queries sit across the modality gap: the text cone's mean m_T is another direction
  (cos(m_I, m_T) = MEANS_COSINE), and a sentence = TEXT_MEAN_WEIGHT * m_T + a scaled copy of its target
  shot's semantic part + semantic noise (TEXT_NOISE times the signal's variance: a sentence names a few
  of the things a frame shows), normalised: cosine ~0.3 to its target keyframe, ~0.15 to random ones
  (CLIP ViT-B/32: ~0.3 for a matching caption, 0.1-0.2 for an unrelated image).
- Image-like queries are a new frame of a stored video: halfway between two stored keyframes of one
  shot, with fresh per-frame noise (a screenshot or another moment of a stored shot).
Everything is drawn from fixed seeds, so a corpus of N keyframes is the first N of a larger one.
"""
import functools

import numpy as np

DIM = 512
SPECTRUM_EXPONENT = 1.0
TOPICS, SUBTOPICS_PER_TOPIC = 40, 25
LEVEL_VARIANCE = {'topic': 0.3, 'subtopic': 0.25, 'video': 0.2, 'shot': 0.15}  # of the semantic part (1.0)
MEAN_SHOT = 8  # keyframes per shot, on average
DRIFT, FRAME_NOISE = 0.008, 0.02  # variance added per keyframe inside a shot, and per frame
VIDEO_LENGTHS = (60, 900)  # keyframes per video (1 per second: 1 to 15 minutes), uniform
IMAGE_MEAN_WEIGHT = 1.0  # = the semantic part's rms norm: mean pairwise cosine 0.5
MEANS_COSINE = 0.3  # cos(m_I, m_T): random image-text cosine = 0.5 * 0.3 = 0.15
TEXT_MEAN_WEIGHT = 1.0
TEXT_SIGNAL, TEXT_NOISE = 0.33, 8.0  # weight of the target's semantic part; noise variance per unit of signal


@functools.cache
def _space() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(2024)
    basis, _ = np.linalg.qr(rng.normal(size=(DIM, DIM)))
    spread = np.arange(1, DIM + 1) ** (-SPECTRUM_EXPONENT / 2)
    spread /= np.sqrt((spread ** 2).sum())  # a draw has unit expected squared norm
    m_image = basis[:, -1]  # outside the strongest semantic directions
    other = basis[:, -2]
    m_text = MEANS_COSINE * m_image + np.sqrt(1 - MEANS_COSINE ** 2) * other
    mix = (spread[:, None] * basis.T).astype(np.float32)  # z @ mix: a draw with the power-law spectrum
    topics = _draw(rng, mix, TOPICS) * np.sqrt(LEVEL_VARIANCE['topic'])
    subtopics = (np.repeat(topics, SUBTOPICS_PER_TOPIC, 0)
                 + _draw(rng, mix, TOPICS * SUBTOPICS_PER_TOPIC) * np.sqrt(LEVEL_VARIANCE['subtopic']))
    return {'mix': mix, 'm_image': m_image.astype(np.float32), 'm_text': m_text.astype(np.float32),
            'subtopics': subtopics}


def _draw(rng: np.random.Generator, mix: np.ndarray, count: int) -> np.ndarray:
    return rng.standard_normal((count, DIM), dtype=np.float32) @ mix


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def video_length(video: int) -> int:
    return int(np.random.default_rng([video, 0]).integers(*VIDEO_LENGTHS))


def video(number: int, length: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Video `number`'s semantic trajectory (unnormalised, one row per keyframe), its shot ids and its
    shots' semantic centres."""
    space, rng = _space(), np.random.default_rng([number, 1])
    length = video_length(number) if length is None else length
    centre = (space['subtopics'][rng.integers(len(space['subtopics']))]
              + _draw(rng, space['mix'], 1)[0] * np.sqrt(LEVEL_VARIANCE['video']))
    shot_of = np.cumsum(rng.random(length) < 1 / MEAN_SHOT)
    shot_of -= shot_of[0]
    shots = centre + _draw(rng, space['mix'], shot_of[-1] + 1) * np.sqrt(LEVEL_VARIANCE['shot'])
    steps = _draw(rng, space['mix'], length) * np.sqrt(DRIFT)
    starts = np.flatnonzero(np.diff(shot_of, prepend=-1))
    walk = np.cumsum(steps, 0)
    walk -= np.repeat(walk[starts] - steps[starts], np.diff(np.append(starts, length)), 0)  # restart at each cut
    return shots[shot_of] + walk, shot_of, shots


def images(semantic: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Keyframe embeddings of semantic rows: per-frame noise, the image cone's mean, normalised."""
    noise = _draw(rng, _space()['mix'], len(semantic)) * np.sqrt(FRAME_NOISE)
    return unit(IMAGE_MEAN_WEIGHT * _space()['m_image'] + semantic + noise)


def corpus(count: int):
    """Yield (first keyframe, embeddings) video by video until `count` keyframes (the last one cut short)."""
    first, number = 0, 0
    while first < count:
        length = min(video_length(number), count - first)
        semantic, _, _ = video(number, video_length(number))
        yield first, images(semantic[:length], np.random.default_rng([number, 2]))
        first += length
        number += 1


def text_queries(count: int, videos: int, seed: int) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """`count` sentence-like queries, each describing a random shot of one of the first `videos` videos;
    with (video, keyframe) of the shot's first keyframe, its target."""
    space, rng = _space(), np.random.default_rng([seed, 3])
    rows, targets = [], []
    for number in rng.integers(0, videos, count):
        semantic, shot_of, shots = video(int(number))
        shot = int(rng.integers(shot_of[-1] + 1))
        signal = shots[shot]  # the shot's semantic centre
        noise = _draw(rng, space['mix'], 1)[0] * np.sqrt(TEXT_NOISE)
        rows.append(TEXT_MEAN_WEIGHT * space['m_text'] + TEXT_SIGNAL * (signal + noise))
        targets.append((int(number), int(np.flatnonzero(shot_of == shot)[0])))
    return unit(np.array(rows)), targets


def image_queries(count: int, videos: int, seed: int) -> np.ndarray:
    """`count` image-like queries: a new frame between two stored keyframes of a shot of the first `videos`."""
    rng = np.random.default_rng([seed, 4])
    rows = []
    for number in rng.integers(0, videos, count):
        semantic, shot_of, _ = video(int(number))
        inside = np.flatnonzero(shot_of[:-1] == shot_of[1:])
        at = int(rng.choice(inside)) if len(inside) else 0
        rows.append((semantic[at] + semantic[min(at + 1, len(semantic) - 1)]) / 2)
    return images(np.array(rows), rng)
