"""QueryBatcher: the texts of queries that arrive together (a server's concurrent searches) embedded in one
forward pass of a text tower instead of one pass each.

No thread of its own (flat combining): the caller that finds the tower free takes every text waiting, up to
`max_batch`, and runs the pass for all of them; the others wait for their rows, or take the tower next. While
queries come in quick succession (the last two less than `wait_s` apart) it first waits up to `wait_s` for
more to join: a lone query never waits. One pass over 8 short queries costs about a third of 8 passes on two
cores, and queries no longer run 8 passes side by side, each with threads of its own. Texts share a pass only
where the tower's runtime computes each row exactly as it would alone (ONNX Runtime: the towers read each
text's output at its own end-of-text token, so a longer neighbour's padding cannot change it; bit for bit in
tests/unit/test_text_batching.py); torch's matrix products differ in the last bits with the batch's shape,
so there each query keeps a pass of its own, one pass at a time.
"""
from __future__ import annotations

import threading
import time
from typing import Callable

import numpy as np

__all__ = ['QueryBatcher']


class QueryBatcher:
    """encode(texts) -> embeddings (N x D) of `encode_batch`, with concurrent callers' texts in one call.

    max_batch: the most texts per pass (a call with more runs alone); wait_s: how long the caller that runs a
    pass waits for other queries to join it while it holds fewer than max_batch, when the last two queries
    came less than wait_s apart (0: never; queries that arrive during a pass are taken by the next one anyway).
    Identical texts waiting together are embedded once.
    exact: whether a text's row is the same in a shared pass as alone (asked before each pass: it may load
    the model); when not, each call gets a pass of its own.
    """

    def __init__(self, encode_batch: Callable[[list[str]], np.ndarray], max_batch: int = 32, wait_s: float = 0.002,
                 exact: Callable[[], bool] = lambda: True):
        if max_batch < 1 or wait_s < 0:
            raise ValueError(f'max_batch must be >= 1 and wait_s >= 0, not {max_batch} and {wait_s}')
        self.encode_batch, self.max_batch, self.wait_s, self.exact = encode_batch, max_batch, wait_s, exact
        self.passes = 0  # forward passes run (a batch of concurrent queries counts once)
        self._changed = threading.Condition()
        self._waiting: list[_Request] = []
        self._busy = False
        self._arrived = float('-inf')  # time.monotonic() of the last query
        self._rush = False  # whether the last two queries came less than wait_s apart

    def encode(self, texts: list[str]) -> np.ndarray:
        request = _Request(list(texts))
        with self._changed:
            self._waiting.append(request)
            now = time.monotonic()
            self._rush, self._arrived = now - self._arrived < self.wait_s, now
            self._changed.notify_all()  # a pass filling up may be waiting for this one
            while not request.done:
                if self._busy:
                    self._changed.wait()
                    continue
                self._busy = True
                try:
                    batch = self._take() if self.exact() else [self._waiting.pop(0)]
                except BaseException:  # the model could not load: this caller fails as it would alone
                    self._waiting.remove(request)
                    self._busy = False
                    self._changed.notify_all()
                    raise
                self._changed.release()
                try:
                    self._run(batch)
                finally:
                    self._changed.acquire()
                    self._busy = False
                    self._changed.notify_all()
        return request.rows()

    def _take(self) -> list[_Request]:
        """The waiting requests (first come first), up to max_batch texts, after waiting up to wait_s for
        more; called holding the lock."""
        deadline = time.monotonic() + self.wait_s
        while self._rush and _count(self._waiting) < self.max_batch and (left := deadline - time.monotonic()) > 0:
            self._changed.wait(left)
        batch, texts = [], 0
        for request in self._waiting:
            if batch and texts + len(request.texts) > self.max_batch:
                break
            batch.append(request)
            texts += len(request.texts)
        del self._waiting[:len(batch)]
        return batch

    def _run(self, batch: list[_Request]) -> None:
        """One pass for the batch's distinct texts; each request gets its rows, or the pass's error."""
        try:
            distinct = list(dict.fromkeys(text for request in batch for text in request.texts))
            embeddings = self.encode_batch(distinct) if distinct else np.empty((0, 0), np.float32)
            self.passes += 1
            row = {text: n for n, text in enumerate(distinct)}
            for request in batch:
                request.result = embeddings[[row[text] for text in request.texts]]
        except BaseException as e:  # every caller of the batch sees the failure, as it would alone
            for request in batch:
                request.error = e
            raise
        finally:
            for request in batch:
                request.done = True


class _Request:
    def __init__(self, texts: list[str]):
        self.texts = texts
        self.done = False
        self.result: np.ndarray | None = None
        self.error: BaseException | None = None

    def rows(self) -> np.ndarray:
        if self.error is not None:
            raise self.error
        return self.result


def _count(requests: list[_Request]) -> int:
    return sum(len(request.texts) for request in requests)
