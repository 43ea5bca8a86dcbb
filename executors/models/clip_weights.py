"""OpenAI's published CLIP checkpoints: where each is downloaded from and its sha256 (part of its URL),
fetched once into a weights folder and checked before use."""
import hashlib
import os
from pathlib import Path

from executors.errors import ModelError

__all__ = ['CHECKPOINTS', 'WEIGHTS_DIR', 'checkpoint_sha256', 'download']

WEIGHTS_DIR = Path(__file__).resolve().parents[2] / 'weights'  # checkpoints by name, exports, remembered hashes

_BASE = 'https://openaipublic.azureedge.net/clip/models'
CHECKPOINTS = {  # clip.available_models() name -> URL (.../<sha256>/<file>), as openai/CLIP publishes them
    'RN50': f'{_BASE}/afeb0e10f9e5a86da6080e35cf09123aca3b358a0c3e3b6c78a7b63bc04b6762/RN50.pt',
    'RN101': f'{_BASE}/8fa8567bab74a42d41c5915025a8e4538c3bdbe8804a470a72f30b0d94fab599/RN101.pt',
    'RN50x4': f'{_BASE}/7e526bd135e493cef0776de27d5f42653e6b4c8bf9e0f653bb11773263205fdd/RN50x4.pt',
    'RN50x16': f'{_BASE}/52378b407f34354e150460fe41077663dd5b39c54cd0bfd2b27167a4a06ec9aa/RN50x16.pt',
    'RN50x64': f'{_BASE}/be1cfb55d75a9666199fb2206c106743da0f6468c9d327f3e0d0a543a9919d9c/RN50x64.pt',
    'ViT-B/32': f'{_BASE}/40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af/ViT-B-32.pt',
    'ViT-B/16': f'{_BASE}/5806e77cd80f8b59890b7e101eabd078d9fb84e6937f9e85e4ecb61988df416f/ViT-B-16.pt',
    'ViT-L/14': f'{_BASE}/b8cca3fd41ae0c99ba7e8951adf17d267cdb84cd88be6f7c2e0eca1737a03836/ViT-L-14.pt',
    'ViT-L/14@336px': f'{_BASE}/3035c92b350959924f9f00213499208652fc7ea050643e8b385c2dac08641f02/ViT-L-14-336px.pt',
}
CHUNK_BYTES = 1 << 20


def checkpoint_sha256(name: str) -> str:
    """The sha256 of the published checkpoint `name` (a CHECKPOINTS key)."""
    return CHECKPOINTS[name].split('/')[-2]


def download(name: str, folder: Path) -> Path:
    """The checkpoint `name` in `folder`, downloaded first when absent (with a progress bar) and checked
    against its sha256 then; a partial or damaged download is never left behind. ModelError says where to
    put the file by hand when it cannot be fetched."""
    url, expected = CHECKPOINTS[name], checkpoint_sha256(name)
    target = folder / os.path.basename(url)
    if target.is_file():  # checked when it was downloaded; hashing 340 MB on every start would cost a second
        return target
    partial = target.with_name(target.name + '.part')
    try:
        folder.mkdir(parents=True, exist_ok=True)
        _fetch(url, partial)
        if _sha256(partial) != expected:
            raise OSError('the downloaded file does not match its sha256')
        os.replace(partial, target)
    except OSError as e:  # urllib's URLError is one
        partial.unlink(missing_ok=True)
        raise ModelError(f"CLIP weights '{name}' are not in {folder}/ and could not be downloaded ({e}); "
                         f'download {url} and place it at {target}') from e
    return target


def _fetch(url: str, path: Path) -> None:
    import urllib.request  # here: its import (ssl, http, email) would cost every command 35 ms

    from tqdm import tqdm

    with urllib.request.urlopen(url, timeout=30) as source, open(path, 'wb') as out:
        total = int(source.headers.get('Content-Length') or 0) or None
        with tqdm(total=total, unit='iB', unit_scale=True, unit_divisor=1024, desc=path.stem) as bar:
            while chunk := source.read(CHUNK_BYTES):
                out.write(chunk)
                bar.update(len(chunk))


def _sha256(path: Path) -> str:
    with open(path, 'rb') as f:
        return hashlib.file_digest(f, 'sha256').hexdigest()
