"""The metrics directory: fresh per server, removed by the process that made it and no other."""

from __future__ import annotations

import os

import pytest

from flaskserve.observability.multiprocess import ENV_VAR, metrics_directory


def test_a_fresh_directory_is_named_in_the_environment_and_removed_after(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(ENV_VAR, "/somewhere/else")
    with metrics_directory() as path:
        assert path.is_dir()
        assert list(path.iterdir()) == []
        assert os.environ[ENV_VAR] == str(path)
        (path / "counter_1.db").write_bytes(b"")
    assert not path.exists()
    assert os.environ[ENV_VAR] == "/somewhere/else"


class _WorkerDone(Exception):
    pass


# Python 3.12+ warns about fork() when threads run; this child only leaves a with-block and exits.
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_a_forked_worker_leaving_the_block_does_not_remove_it() -> None:
    def serve() -> None:
        with metrics_directory() as path:
            pid = os.fork()
            if pid == 0:
                # A gunicorn worker unwinds through the master's stack when it exits.
                raise _WorkerDone
            _, status = os.waitpid(pid, 0)
            assert os.waitstatus_to_exitcode(status) == 0
            assert path.is_dir(), "the worker removed the directory its siblings still use"
        assert not path.exists()

    try:
        serve()
    except _WorkerDone:
        os._exit(0)
