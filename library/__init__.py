"""VCED's library layer: the operations users have, shared by the CLI (flow.py), the page (app.py),
evaluation and training. It is also the Python API for scripted runs:

    from library import Library

    with Library(workspace='data/workspace') as library:
        for video in library.index(['data/videos']):
            print(video.status, video.uri)
        for moment in library.search('a man rides a bike along the beach', top=5):
            print(moment.uri, moment.start, moment.end, moment.score)
"""
from executors.documents import Status
from executors.video_loader import file_sha256
from library.files import VIDEO_EXTENSIONS, find_videos, query_file, read_image, safe_file_name, save_upload
from library.operations import Library, import_models
from library.report import (IndexSummary, duplicate_lines, duplicate_record, format_srt, format_time, format_vtt, highlight,
                            json_text, local_time, match_record, one_line, outcome_line, plural, progress_fraction,
                            progress_text, shared_footage_notes, shorten, time_range, video_line, video_record)

__all__ = ['Library', 'import_models', 'IndexSummary', 'VIDEO_EXTENSIONS', 'find_videos', 'read_image', 'save_upload', 'safe_file_name',
           'format_srt', 'format_time', 'time_range', 'one_line', 'plural', 'progress_fraction', 'shorten', 'highlight', 'local_time',
           'progress_text', 'Status', 'file_sha256', 'format_vtt', 'match_record', 'video_record', 'json_text',
           'outcome_line', 'video_line', 'shared_footage_notes', 'query_file', 'duplicate_record', 'duplicate_lines']
