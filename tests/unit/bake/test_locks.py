"""Image locks on this machine: one bake at a time, the holder's run id kept, held locks read as live runs."""

import io
import threading
import time

from pipeline.bake import locks
from pipeline.progress import Reporter

RUN, OTHER = "20261101T020000Z-0a1d0d", "20261101T030000Z-0b2e0e"


def quiet() -> Reporter:
    return Reporter(stream=io.StringIO())


def test_a_held_lock_names_its_live_run_and_a_released_one_none(tmp_path):
    with locks.image_lock(tmp_path, "app", RUN, quiet()):
        assert locks.live_runs(tmp_path) == {RUN}
    assert locks.live_runs(tmp_path) == set()  # the id is still in the file, but nobody holds it
    assert (tmp_path / "app.lock").read_text() == RUN + "\n"


def test_a_waiter_does_not_wipe_the_holders_run_id_and_writes_its_own_once_it_holds_the_lock(tmp_path):
    lines, reporter = [], quiet()
    reporter.line = lines.append  # type: ignore[method-assign]
    inside = threading.Event()

    def second() -> None:
        with locks.image_lock(tmp_path, "app", OTHER, reporter):
            inside.set()
            time.sleep(0.5)

    with locks.image_lock(tmp_path, "app", RUN, quiet()):
        waiter = threading.Thread(target=second)
        waiter.start()
        deadline = time.monotonic() + 5
        while not lines and time.monotonic() < deadline:
            time.sleep(0.02)
        assert lines == ["app: another bake of app is running on this machine; waiting for it"]
        assert locks.live_runs(tmp_path) == {RUN}  # the waiter opened the file and left the holder's id
    assert inside.wait(5)
    assert locks.live_runs(tmp_path) == {OTHER}
    waiter.join()


def test_proc_locks_lines_are_read_for_their_inode(tmp_path):
    table = tmp_path / "locks"
    table.write_text("1: FLOCK  ADVISORY  WRITE 4242 08:01:1234567 0 EOF\n"
                     "2: -> FLOCK  ADVISORY  WRITE 4343 08:01:7654321 0 EOF\n"
                     "3: POSIX  ADVISORY  WRITE 4444 00:2a:99 0 EOF\n")
    assert locks.held_inodes(table) == {1234567, 7654321}
