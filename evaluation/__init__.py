"""MSR-VTT-style retrieval evaluation (`flow.py eval`): R@K, MdR, MnR of the flow's own loader and model."""
from evaluation.cache import FrameCache, flow_settings
from evaluation.dataset import Caption, Dataset, load_dataset, read_captions
from evaluation.metrics import RECALL_AT, evaluate_similarity, normalize, pooled_similarity, ranks, retrieval_metrics
from evaluation.runner import Report, add_arguments, cache_for, command, encode_captions, encode_videos, evaluate

__all__ = ['Caption', 'Dataset', 'FrameCache', 'Report', 'evaluate', 'evaluate_similarity', 'flow_settings',
           'load_dataset', 'normalize', 'pooled_similarity', 'ranks', 'read_captions', 'retrieval_metrics',
           'RECALL_AT', 'encode_videos', 'encode_captions', 'command', 'add_arguments', 'cache_for']
