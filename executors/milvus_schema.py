"""The Milvus backend's three collections: their fields and indexes (see executors/milvus_storage.py)."""


def create_collections(client, names: dict[str, str], dim: int, hnsw: dict, analyzer: dict) -> None:
    """Create the videos, frames and cues collections that do not exist yet (Strong consistency: a
    reader sees every write acknowledged before its request)."""
    from pymilvus import DataType, Function, FunctionType

    def schema(*fields) -> tuple:
        result = client.create_schema(auto_id=False, enable_dynamic_field=False)
        result.add_field('id', DataType.VARCHAR, is_primary=True, max_length=96)
        for name, kind, options in fields:
            result.add_field(name, kind, **options)
        return result, client.prepare_index_params()

    text = lambda length: (DataType.VARCHAR, {'max_length': length})  # noqa: E731
    videos, videos_index = schema(
        ('path', *text(8192)), ('duration', DataType.DOUBLE, {}), ('fps', DataType.DOUBLE, {}),
        ('width', DataType.INT64, {}), ('height', DataType.INT64, {}), ('added', *text(40)),
        ('frame_count', DataType.INT64, {}), ('cue_count', DataType.INT64, {}), ('size', DataType.INT64, {}),
        ('mtime_ns', DataType.INT64, {}),
        ('seq', DataType.INT64, {}),  # time.time_ns() when written: the order videos were added
        ('state', *text(16)),  # 'pending' while its frames and cues are written, then 'stored'
        ('shots', *text(65535)),  # base64 little-endian float64 seconds
        ('space', *text(128)), ('space_name', *text(512)),  # the image tower: checkpoint identity, model name
        ('mean', DataType.FLOAT_VECTOR, {'dim': dim}))  # mean keyframe vector (CLIP4Clip's meanP)
    videos_index.add_index(field_name='mean', index_type='FLAT', metric_type='IP')

    frames, frames_index = schema(
        ('video_id', *text(64)), ('frame', DataType.INT64, {}), ('timestamp', DataType.DOUBLE, {}),
        ('thumbnail', *text(1024)),  # relative to <workspace>/thumbnails/
        ('written', DataType.INT64, {}),  # unix seconds
        ('vector', DataType.FLOAT_VECTOR, {'dim': dim}))
    frames_index.add_index(field_name='vector', index_type='HNSW', metric_type='IP', params=hnsw)
    frames_index.add_index(field_name='video_id', index_type='INVERTED')

    cues, cues_index = schema(
        ('video_id', *text(64)), ('cue', DataType.INT64, {}), ('start', DataType.DOUBLE, {}),
        ('end', DataType.DOUBLE, {}),
        ('text', DataType.VARCHAR, {'max_length': 32768, 'enable_analyzer': True, 'analyzer_params': analyzer}),
        ('source', *text(16)), ('language', *text(16)), ('written', DataType.INT64, {}),
        ('sparse', DataType.SPARSE_FLOAT_VECTOR, {}))  # filled by Milvus from `text`
    cues.add_function(Function(name='cue_bm25', function_type=FunctionType.BM25, input_field_names=['text'],
                               output_field_names=['sparse']))
    cues_index.add_index(field_name='sparse', index_type='SPARSE_INVERTED_INDEX', metric_type='BM25')
    cues_index.add_index(field_name='video_id', index_type='INVERTED')

    for kind, (fields, index) in (('cues', (cues, cues_index)), ('frames', (frames, frames_index)),
                                  ('videos', (videos, videos_index))):  # videos last: readers wait for it
        if not client.has_collection(names[kind]):
            client.create_collection(names[kind], schema=fields, index_params=index, consistency_level='Strong')
