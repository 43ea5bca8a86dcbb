"""Whether a flow's library exists yet, read from its settings without opening (and so creating) it."""
from pathlib import Path

from executors.errors import WorkspaceError

__all__ = ['require_library']

LOCAL_FILES = ('catalog.sqlite', 'embeddings.f16')  # the local backend's; either one: a library (maybe damaged: storage says)


def require_library(settings: dict, overrides: dict) -> None:
    """Raise WorkspaceError naming the workspace (or Milvus Lite file) when there is no library there yet.

    A Milvus server (an http(s) or tcp uri) is not checked here: it answers for itself."""
    indexer = next((e.get('with') or {} for e in settings['executors'] if isinstance(e, dict) and e.get('uses') == 'Indexer'), {})

    milvus = indexer.get('milvus') if isinstance(indexer.get('milvus'), dict) else {}

    def setting(name: str, default: str) -> str:  # as the Flow resolves it: override > executor's with > top-level with
        for source in (overrides, milvus, indexer, settings['with']):  # uri: the Indexer's `milvus: {uri}` block
            if source.get(name) is not None:
                return str(source[name])
        return default

    workspace = Path(setting('workspace', 'data/workspace')).expanduser()
    backend, uri = setting('backend', 'hnswlib'), setting('uri', '')
    if backend == 'milvus':
        if '://' in uri:
            return
        stores = [Path(uri).expanduser() if uri else workspace / 'milvus.db']
    else:
        stores = [workspace / name for name in LOCAL_FILES]
    if not any(store.exists() for store in stores):
        raise WorkspaceError(f'{workspace}: no library here yet ({stores[0].name} does not exist): '
                             'check --workspace, or index some videos into it first')
