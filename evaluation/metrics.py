"""Retrieval metrics in the MSR-VTT style: R@1/5/10, MdR, MnR for text->video and video->text.

The figures are those of the field (CLIP4Clip, Frozen in Time, ...): each caption is a query over
the videos, each video a query over the captions, and a query's rank is the position of its first
correct answer.
"""
import numpy as np

from executors.vectors import unit_rows as normalize

RECALL_AT = (1, 5, 10)
POOLINGS = ('mean', 'max')  # mean: meanP (mean of frame embeddings, renormalised); max: the best frame
DIRECTIONS = ('text_to_video', 'video_to_text')
RANK_BLOCK = 1024  # queries ranked at a time: bounds memory on full test sets (60k captions x 3k videos)


def ranks(similarity: np.ndarray, relevant: np.ndarray) -> np.ndarray:
    """The 1-based rank of each row's best relevant column, counting ties against it.

    `similarity` and `relevant` (bool) are queries x candidates. A wrong candidate that scores the
    same as the best correct one is ranked above it (the pessimistic convention): otherwise a model
    that gives every input the same embedding would score R@1 = 100. Other correct candidates never
    push a query's rank down.
    """
    similarity = np.asarray(similarity)
    relevant = np.asarray(relevant, dtype=bool)
    if similarity.ndim != 2 or similarity.shape != relevant.shape:
        raise ValueError(f'similarity {similarity.shape} and relevant {relevant.shape} must be equal 2-d shapes')
    if not relevant.any(axis=1).all():
        raise ValueError(f'query {int(np.argmin(relevant.any(axis=1)))} has no relevant candidate')
    result = np.empty(len(similarity), dtype=np.int64)
    for start in range(0, len(similarity), RANK_BLOCK):
        scores, correct = similarity[start:start + RANK_BLOCK], relevant[start:start + RANK_BLOCK]
        best = np.where(correct, scores, -np.inf).max(axis=1, keepdims=True)
        result[start:start + RANK_BLOCK] = 1 + ((scores >= best) & ~correct).sum(axis=1)
    return result


def retrieval_metrics(query_ranks: np.ndarray) -> dict[str, float]:
    """R@1, R@5, R@10 (percent of queries whose rank is at most K), MdR and MnR (median, mean rank)."""
    query_ranks = np.asarray(query_ranks)
    if query_ranks.size == 0:
        raise ValueError('no queries to score')
    metrics = {f'R@{k}': 100.0 * float(np.mean(query_ranks <= k)) for k in RECALL_AT}
    metrics['MdR'] = float(np.median(query_ranks))
    metrics['MnR'] = float(np.mean(query_ranks))
    return metrics


def evaluate_similarity(similarity: np.ndarray, caption_video: np.ndarray) -> dict[str, dict[str, float]]:
    """Both directions' metrics from a captions x videos similarity matrix.

    `caption_video[i]` is the column of caption i's video. Text->video: each caption ranks the
    videos. Video->text: each video ranks every caption and counts its best-ranked own caption, so
    a video with several captions is one query (the standard for multi-caption test sets).
    """
    similarity = np.asarray(similarity)
    caption_video = np.asarray(caption_video)
    relevant = caption_video[:, None] == np.arange(similarity.shape[1])[None, :]
    return {'text_to_video': retrieval_metrics(ranks(similarity, relevant)),
            'video_to_text': retrieval_metrics(ranks(similarity.T, relevant.T))}


def pooled_similarity(text: np.ndarray, frames: list[np.ndarray], pooling: str) -> np.ndarray:
    """Captions x videos cosine similarity; `frames[j]` holds video j's frame embeddings (frames x dim).

    'mean' compares each caption with the renormalised mean of a video's frames (CLIP4Clip's meanP);
    'max' takes the video's best-matching frame.
    """
    text = normalize(text)
    if pooling == 'mean':
        return text @ normalize(np.stack([normalize(f).mean(axis=0) for f in frames])).T
    if pooling == 'max':
        starts = np.cumsum([0] + [len(f) for f in frames[:-1]])
        return np.maximum.reduceat(text @ normalize(np.concatenate(frames)).T, starts, axis=1)
    raise ValueError(f"unknown pooling '{pooling}' (choose from {', '.join(POOLINGS)})")
