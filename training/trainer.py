"""The training loop: epochs of shuffled batches, a line per epoch with the loss and validation R@1,
the best epoch written to the tuned file as soon as it is found, early stopping, Ctrl-C safe."""
import logging
import math
import sys
from dataclasses import dataclass, field
from typing import Callable, Protocol

import numpy as np
import torch

log = logging.getLogger(__name__)


class Method(Protocol):
    def parameters(self) -> list[torch.Tensor]: ...
    def loss(self, rows: np.ndarray, logit_scale: torch.Tensor) -> torch.Tensor: ...
    def validate(self) -> float | None: ...  # None: no validation set


@dataclass
class Settings:
    epochs: int = 20          # at most this many passes over the training captions
    batch: int = 64           # captions per step (their videos are the step's candidates)
    lr: float = 1e-3          # AdamW learning rate of the trained parts and the temperature
    weight_decay: float = 0.01  # AdamW, on the trained parts
    patience: int = 10        # stop after this many epochs without a better validation R@1
    seed: int = 0             # shuffling and initialisation


@dataclass
class Outcome:
    best_epoch: int = 0       # 0: every epoch did worse than the untrained model on validation (nothing was saved)
    best_r1: float | None = None  # validation R@1 of best_epoch (None: no validation set, the last epoch is kept)
    history: list[dict] = field(default_factory=list)  # per epoch: loss, val R@1
    interrupted: bool = False


def train(method: Method, pairs: int, settings: Settings, logit_scale: float,
          save: Callable[[dict], None], progress: bool = True) -> Outcome:
    """Train `method` on `pairs` caption rows; `save(metrics)` writes the current parts whenever
    validation improves on every earlier epoch and on the untrained model, or after every epoch when
    the method has no validation set (then early stopping is off). One line per epoch goes to stderr
    and the log, a terminal also shows a bar while the epoch runs."""
    torch.manual_seed(settings.seed)
    rng = np.random.default_rng(settings.seed)
    scale = torch.nn.Parameter(torch.tensor(float(logit_scale)))
    parameters = [p for p in method.parameters() if p.requires_grad]
    optimiser = torch.optim.AdamW([{'params': parameters, 'weight_decay': settings.weight_decay},
                                   {'params': [scale], 'weight_decay': 0.0}], lr=settings.lr)
    steps = math.ceil(pairs / settings.batch)
    untrained = method.validate()
    outcome = Outcome(best_r1=untrained)
    outcome.history.append({'epoch': 0, 'loss': None, 'val_r1': untrained})
    if untrained is not None:
        _say(progress, f'untrained: validation R@1 {untrained:.1f}')
    try:
        for epoch in range(1, settings.epochs + 1):
            loss = _epoch(method, optimiser, scale, rng.permutation(pairs), settings.batch,
                          _bar(steps, f'epoch {epoch}/{settings.epochs}', progress))
            r1 = method.validate()
            outcome.history.append({'epoch': epoch, 'loss': loss, 'val_r1': r1})
            # the first epoch as good as the untrained model is kept (a saturated validation set cannot
            # tell them apart); after it, only a better one
            better = r1 is None or r1 > outcome.best_r1 or not outcome.best_epoch and r1 >= outcome.best_r1
            if better:
                outcome.best_epoch, outcome.best_r1 = epoch, r1
                save(_metrics(outcome, scale))
            _epoch_line(progress, epoch, settings.epochs, loss, r1, better)
            if not better and epoch - outcome.best_epoch >= settings.patience:
                _say(progress, f'no better validation R@1 for {settings.patience} epochs: stopping')
                break
    except KeyboardInterrupt:
        outcome.interrupted = True
    return outcome


def _epoch(method: Method, optimiser, scale: torch.Tensor, order: np.ndarray, batch: int, bar) -> float:
    """One pass over the shuffled caption rows; the mean loss of its steps."""
    losses = []
    for start in range(0, len(order), batch):
        rows = order[start:start + batch]
        if len(rows) < 2 and start:  # a lone caption has nothing to be contrasted with
            continue
        loss = method.loss(rows, scale)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        losses.append(float(loss.detach()))
        bar.update(1)
        bar.set_postfix(loss=f'{np.mean(losses):.4f}')
    bar.close()
    return float(np.mean(losses))


def _epoch_line(progress: bool, epoch: int, epochs: int, loss: float, r1: float | None, better: bool) -> None:
    text = f'epoch {epoch}/{epochs}: loss {loss:.4f}'
    if r1 is not None:
        text += f', validation R@1 {r1:.1f}' + (' (best so far: saved)' if better else '')
    _say(progress, text)


def _metrics(outcome: Outcome, scale: torch.Tensor) -> dict:
    return {'best_epoch': outcome.best_epoch, 'val_r1': outcome.best_r1, 'logit_scale': float(scale.detach()),
            'history': [dict(h) for h in outcome.history]}


def _bar(total: int, description: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc=description, unit='step', file=sys.stderr, disable=not enabled or None,
                leave=False)


def _say(enabled: bool, text: str) -> None:
    if enabled:
        print(text, file=sys.stderr, flush=True)
    log.info(text)
