"""claim.py — one job at a time across processes, for the resumable bench studies.

`with claim(work_dir, name) as mine:` holds WORK_DIR/locks/NAME.lock (flock) for the
body, or yields False when another process holds it.  Several instances of a study (one
per core, started at any time) then share its runs without overlap; a killed instance's
lock goes with it, so its job is taken up again (from its checkpoint) by the next
instance that reaches it.  Used by unas_study.py and ground_truth.py.
"""
import contextlib
import fcntl
import os


@contextlib.contextmanager
def claim(work_dir, name):
    d = os.path.join(work_dir, "locks")
    os.makedirs(d, exist_ok=True)
    f = open(os.path.join(d, name + ".lock"), "w")
    try:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            yield False
            return
        yield True
    finally:
        f.close()
