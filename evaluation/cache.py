"""Frame embeddings cached per (video content, flow settings): a second eval or training run skips decoding."""
import hashlib
import json
import os
from pathlib import Path

import numpy as np

from executors.models.clip_model import image_space_id, resolve_device
from executors.errors import VcedError

CACHE_VERSION = 1  # bump when what the cache holds changes meaning


def flow_settings(settings: dict) -> dict:
    """A flow's settings (flow.yml as overridden, Flow.settings): what decides a video's frame embeddings.

    The model is identified by the image space it embeds frames into (its checkpoint's sha256: a
    query-tuned file shares its base's frame embeddings); 'auto' device is resolved (CUDA runs fp16,
    so its embeddings differ slightly from the CPU's).
    """
    shared = dict(settings['with'])
    if shared.get('model'):
        shared['model'] = image_space_id(str(shared['model']))
    shared['device'] = resolve_device(str(shared.get('device', 'auto')))
    return {'with': shared, 'executors': settings['executors']}


class FrameCache:
    """Frame embeddings per (video content, flow settings), as .npy files under `folder`.

    Any change to flow.yml, the overrides or the model file gives a new key, so a stale entry is
    never read; a changed video has a new content hash.
    """

    def __init__(self, folder: str | Path, settings: dict):
        self.folder = Path(folder)
        settings = {k: v for k, v in settings['with'].items() if k != 'workspace'} | {'executors': settings['executors']}
        text = json.dumps({'version': CACHE_VERSION, 'settings': settings}, sort_keys=True, default=str)
        self.settings_key = hashlib.sha256(text.encode()).hexdigest()[:16]

    def path(self, video_hash: str) -> Path:
        return self.folder / self.settings_key / f'{video_hash}.npy'

    def get(self, video_hash: str) -> np.ndarray | None:
        """The cached frame embeddings of this video, or None when not cached."""
        try:
            return np.load(self.path(video_hash), allow_pickle=False)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as e:
            raise VcedError(f'{self.path(video_hash)}: unreadable cache entry ({e}); delete {self.folder}') from e

    def put(self, video_hash: str, embeddings: np.ndarray) -> None:
        target = self.path(video_hash)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(f'.{os.getpid()}.tmp')
        with open(partial, 'wb') as f:
            np.save(f, np.asarray(embeddings, dtype=np.float32), allow_pickle=False)
        os.replace(partial, target)  # never leave a half-written entry under the final name
