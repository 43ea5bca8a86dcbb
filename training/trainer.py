"""The training loop: epochs of shuffled batches, a progress bar with the loss and validation R@1,
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
    def validate(self) -> float: ...


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
    best_epoch: int = 0       # 0: no epoch beat the untrained model (the tuned file then holds the untrained parts)
    best_r1: float = -1.0
    history: list[dict] = field(default_factory=list)  # per epoch: loss, val R@1
    interrupted: bool = False


def train(method: Method, pairs: int, settings: Settings, logit_scale: float,
          save: Callable[[dict], None], progress: bool = True) -> Outcome:
    """Train `method` on `pairs` caption rows; `save(metrics)` writes the current parts whenever
    validation improves (and once before the first epoch, so an early Ctrl-C leaves a file too)."""
    torch.manual_seed(settings.seed)
    rng = np.random.default_rng(settings.seed)
    scale = torch.nn.Parameter(torch.tensor(float(logit_scale)))
    parameters = [p for p in method.parameters() if p.requires_grad]
    optimiser = torch.optim.AdamW([{'params': parameters, 'weight_decay': settings.weight_decay},
                                   {'params': [scale], 'weight_decay': 0.0}], lr=settings.lr)
    steps = math.ceil(pairs / settings.batch)
    outcome = Outcome(best_r1=method.validate())
    outcome.history.append({'epoch': 0, 'loss': None, 'val_r1': outcome.best_r1})
    save(_metrics(outcome, scale))
    _say(progress, f'untrained: validation R@1 {outcome.best_r1:.1f}')
    try:
        for epoch in range(1, settings.epochs + 1):
            order = rng.permutation(pairs)
            total = 0.0
            bar = _bar(steps, f'epoch {epoch}/{settings.epochs}', progress)
            for step in range(steps):
                rows = order[step * settings.batch:(step + 1) * settings.batch]
                if len(rows) < 2 and step:  # a lone caption has nothing to be contrasted with
                    continue
                loss = method.loss(rows, scale)
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
                total += float(loss)
                bar.update(1)
                bar.set_postfix(loss=f'{total / (step + 1):.4f}')
            r1 = method.validate()
            outcome.history.append({'epoch': epoch, 'loss': total / steps, 'val_r1': r1})
            better = r1 > outcome.best_r1
            bar.set_postfix(loss=f'{total / steps:.4f}', val_R1=f'{r1:.1f}', best=epoch if better else outcome.best_epoch)
            bar.close()
            if better:
                outcome.best_epoch, outcome.best_r1 = epoch, r1
                save(_metrics(outcome, scale))
            elif epoch - outcome.best_epoch >= settings.patience:
                _say(progress, f'no better validation R@1 for {settings.patience} epochs: stopping')
                break
    except KeyboardInterrupt:
        outcome.interrupted = True
    return outcome


def _metrics(outcome: Outcome, scale: torch.Tensor) -> dict:
    return {'best_epoch': outcome.best_epoch, 'val_r1': outcome.best_r1, 'logit_scale': float(scale),
            'history': [dict(h) for h in outcome.history]}


def _bar(total: int, description: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc=description, unit='step', file=sys.stderr, disable=not enabled or None,
                leave=True)


def _say(enabled: bool, text: str) -> None:
    if enabled:
        print(text, file=sys.stderr)
    log.info(text)
