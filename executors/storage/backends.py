"""Which storage backend a flow uses: flow.yml's Indexer `backend:` (CLI --backend, --uri)."""
from pathlib import Path

from executors.storage.interface import Storage

BACKENDS = ('hnswlib', 'milvus')


def open_storage(backend: str, *, workspace: str, uri: str = '', token: str = '', index: str = 'ivf', M: int = 16,
                 ef_construction: int = 100, ef_search: int = 256, nprobe: int = 32,
                 lock_wait: float = 60.0) -> Storage:
    """The backend's Storage: 'hnswlib' keeps everything in the `workspace` folder; 'milvus' keeps it
    in Milvus at `uri` (Milvus Lite when it is a file path, default <workspace>/milvus.db). `index`
    and `nprobe` are the workspace's (Milvus keeps an HNSW index of its own)."""
    if backend == 'hnswlib':
        from executors.storage.local.local_storage import HnswlibStorage

        return HnswlibStorage(workspace, index=index, M=M, ef_construction=ef_construction, ef_search=ef_search,
                              nprobe=nprobe, lock_wait=lock_wait)
    if backend == 'milvus':
        from executors.storage.milvus.milvus_storage import MilvusStorage

        return MilvusStorage(uri or str(Path(workspace) / 'milvus.db'), token=token, workspace=workspace, M=M,
                             ef_construction=ef_construction, ef_search=ef_search)
    raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
