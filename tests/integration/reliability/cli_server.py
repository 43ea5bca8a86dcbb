"""A fork server for the reliability tests: `python flow.py ...` without paying Python's start-up per run.

It imports flow.py and the executors' heavy modules once (no model is loaded, no torch op runs), then
reads one JSON job per line on stdin, {"argv": [...], "out": path, "err": path}, forks a child that
runs flow.main(argv) exactly as `python flow.py` would (stdout and stderr to the files), answers
{"pid": pid} at once and {"code": exit code, negative for a signal} when the child is gone.
"""
import json
import os
import sys
import traceback


def main() -> None:
    import flow
    from executors.models import clip_encoding  # noqa: F401
    from executors.models import clip_model
    from executors import image_encoder
    from executors import indexer
    from executors import text_encoder
    from executors import video_loader

    clip_model.clip_package()
    for line in sys.stdin:
        job = json.loads(line)
        pid = os.fork()
        if pid == 0:
            _child(flow, job)
        print(json.dumps({'pid': pid}), flush=True)
        _, status = os.waitpid(pid, 0)
        print(json.dumps({'code': os.waitstatus_to_exitcode(status)}), flush=True)


def _child(flow, job: dict) -> None:
    code = 70
    try:
        for fd, path in ((1, job['out']), (2, job['err'])):
            os.dup2(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), fd)
        os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
        code = flow.main(job['argv'])
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


if __name__ == '__main__':
    main()
