"""kill -9 of `flow.py index` at seeded random moments: the workspace stays consistent and a re-run finishes it."""
import random
import re
import time

from executors.documents import DocList, VideoDoc
from executors.indexer import Indexer
from tests.integration.reliability.checks import check_consistent

KILLS = 20  # trials that really killed a running index
SEED = 7


def test_kill_9_at_random_moments_never_corrupts_and_a_rerun_completes_without_duplicates(cli, batch, reference,
                                                                                          tiny_checkpoint, tmp_path):
    rng = random.Random(SEED)
    workspace = tmp_path / 'workspace'
    command = ('index', batch, '--workspace', workspace, '--model', tiny_checkpoint)
    ids = list(reference.videos)
    started = time.monotonic()
    assert cli.run(*command)[0] == 0
    full_run = time.monotonic() - started  # how long the whole batch takes here
    kills, trials, summary = 0, 0, []
    window = full_run  # kill within this many seconds of the start; adapts to the load and the batch left
    while kills < KILLS:
        trials += 1
        assert trials <= 3 * KILLS, f'only {kills} of {trials} trials killed a running index'
        _delete(workspace, rng.sample(ids, rng.randint(1, len(ids))))  # work for the next run; the writer cleans up
        check_consistent(workspace, reference, strict=True)

        cli.start(*command)
        killed, code, out, err = cli.kill_after(rng.uniform(0, window))
        kills += killed
        window = min(window * 1.2, 2 * full_run) if killed else window * 0.6  # a miss: the run ended first
        left = check_consistent(workspace, reference, strict=False)
        assert killed or code == 0, err

        time.sleep(0.05)  # a writer removes only leftovers older than its own start (newer may be its loader's)
        code, out, err = cli.run(*command)  # the same command again finishes the batch
        assert code == 0, err
        indexed, already, failed = map(int, re.search(r'(\d+) indexed, (\d+) already indexed, (\d+) failed',
                                                      out).groups())
        assert (indexed + already, failed) == (len(ids), 0), out
        check_consistent(workspace, reference, strict=indexed > 0)
        stored = _stored(workspace)
        assert sorted(stored) == sorted(ids)  # every video once
        summary.append((killed, indexed, left))
    left = [s[2] for s in summary]
    print(f'\n{trials} trials, {kills} kills; a kill left orphan rows {sum(bool(x["rows"]) for x in left)} times, '
          f'orphan thumbnail folders {sum(bool(x["thumbnails"]) for x in left)} times; all removed by the next writer')


def _delete(workspace, video_ids) -> None:
    indexer = Indexer(workspace=str(workspace))
    stored = {v.video_id for v in indexer.list_videos(DocList[VideoDoc]())}
    indexer.delete(DocList[VideoDoc]([VideoDoc(video_id=v) for v in video_ids if v in stored]))
    indexer.close()


def _stored(workspace) -> list[str]:
    indexer = Indexer(workspace=str(workspace))
    try:
        return [v.video_id for v in indexer.list_videos(DocList[VideoDoc]())]
    finally:
        indexer.close()
