"""The README's and the examples' commands, run as a user types them, and their outputs compared.

The Markdown is what is tested: a fenced block runs when the line right above it marks it.

``<!-- docs-test: shell -->``
    Commands, one per line (a trailing ``\\`` or an open quote continues a line; ``#`` lines are
    comments). A line that starts with ``{`` or ``[`` is the output the docs show for the command
    before it; ``...`` in it stands for anything.
``<!-- docs-test: shell install -->``
    The same, run only from a fresh virtual environment: creating it, activating it, ``pip install``.
``<!-- docs-test: output -->``
    The output of the last command run before it.
``<!-- docs-test: file NAME -->``
    The block's text, saved as NAME in the document's folder (a config file a user copies).

The commands of every document run in one bash session, as in one terminal: the README's at the
top of a copy of the repository, then each example's in its folder. ``flaskserve serve`` runs in
the background, as in a second terminal, and the next command waits until it is ready; a new server
stops the one before. Servers listen on a free port, which ``FLASKSERVE_PORT`` gives the server and
the example clients, and which replaces 5000 in the ``curl`` commands: nothing else is changed.

Two forms:

- in every test run, each document in this environment, its install blocks left out;
- ``make docs-check`` (``FLASKSERVE_DOCS_FRESH_VENV=1``): every document in turn from a fresh
  virtual environment that the README's install block creates, ``pip install .`` from the copy
  and ``pip install requests`` from PyPI included. That takes minutes, mostly downloads, so it is
  kept out of the ordinary run.
"""

from __future__ import annotations

import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from live_server import free_port

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = (
    "README.md",
    "examples/digits/README.md",
    "examples/intents/README.md",
    "examples/recommendations/README.md",
)
FRESH = os.environ.get("FLASKSERVE_DOCS_FRESH_VENV") == "1"

_MARK = re.compile(r"<!-- docs-test: (?P<kind>shell|output|file)(?: (?P<arg>[^ ]+))? -->")
_DOCUMENTED_PORT = re.compile(r"\b(localhost|127\.0\.0\.1):5000\b")
#: Seconds one command may take; ``pip install`` from PyPI is the slow one.
COMMAND_TIMEOUT_S = 900 if FRESH else 300
#: Seconds a server may take to load its models and answer ``/readyz``.
SERVER_READY_S = 180


@dataclass
class Step:
    """One command a user types (or a file they save), with the output the docs show for it."""

    where: str
    command: str = ""
    expected: list[str] = field(default_factory=list)
    file: tuple[str, str] | None = None
    install: bool = False

    @property
    def server(self) -> bool:
        return self.command.startswith("flaskserve serve")


@dataclass
class Block:
    kind: str
    arg: str | None
    lines: list[str]
    line: int


def marked_blocks(document: Path) -> list[Block]:
    lines = document.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    for number, line in enumerate(lines):
        mark = _MARK.fullmatch(line.strip())
        if mark is None:
            continue
        fence = number + 1
        if fence >= len(lines) or not lines[fence].startswith("```"):
            raise ValueError(f"{document.name}:{number + 1}: a docs-test mark must sit right above a fence")
        end = next(i for i in range(fence + 1, len(lines)) if lines[i].startswith("```"))
        blocks.append(Block(mark["kind"], mark["arg"], lines[fence + 1 : end], fence + 2))
    return blocks


def _is_output(line: str) -> bool:
    return line.startswith(("{", "["))


def _complete(command: str) -> bool:
    """Whether a command line is whole: no trailing backslash, no single quote left open."""
    return not command.endswith("\\") and command.count("'") % 2 == 0


def steps_of(document: Path, root: Path = ROOT) -> list[Step]:
    """The document's marked blocks as the steps a user takes, in order."""
    steps: list[Step] = []
    name = document.relative_to(root)
    for block in marked_blocks(document):
        where = f"{name}:{block.line}"
        if block.kind == "file":
            if block.arg is None:
                raise ValueError(f"{where}: a file block needs a name")
            steps.append(Step(where, file=(block.arg, "\n".join(block.lines) + "\n")))
            continue
        if block.kind == "output":
            runs = [step for step in steps if step.command]
            if not runs:
                raise ValueError(f"{where}: an output block must follow a command")
            runs[-1].expected.extend(line for line in block.lines if line.strip())
            continue
        pending: list[str] = []
        first = 0
        for offset, line in enumerate(block.lines):
            if not pending and (not line.strip() or line.lstrip().startswith("#")):
                continue
            if not pending and _is_output(line):
                if not steps or not steps[-1].command:
                    raise ValueError(f"{where}: output before any command")
                steps[-1].expected.append(line)
                continue
            if not pending:
                first = offset
            pending.append(line)
            command = "\n".join(pending)
            if _complete(command):
                steps.append(Step(f"{name}:{block.line + first}", command, install=block.arg == "install"))
                pending = []
        if pending:
            raise ValueError(f"{where}: the block ends inside a command")
    return steps


def matches(expected: str, actual: str) -> bool:
    pattern = ".*".join(re.escape(part) for part in expected.split("..."))
    return re.fullmatch(pattern, actual) is not None


class Session:
    """One bash, as the user's terminal; servers started from it run in the background."""

    def __init__(self, cwd: Path, env: dict[str, str], port: int, logs: Path) -> None:
        self.port = port
        self.logs = logs
        self.sentinel = f"__docs_test_{uuid.uuid4().hex}__"
        self.server_pid: int | None = None
        self.server_log: Path | None = None
        self.process = subprocess.Popen(
            ["bash", "--noprofile", "--norc"],
            cwd=cwd,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def _send(self, text: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(text + "\n")
        self.process.stdin.flush()

    def _until_sentinel(self, timeout: float) -> tuple[list[str], str]:
        deadline = time.monotonic() + timeout
        output: list[str] = []
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                so_far = "".join(output)
                raise TimeoutError(f"no end after {timeout:.0f} s; output so far: {so_far}") from None
            if line is None:
                raise RuntimeError("the shell ended")
            if line.startswith(self.sentinel):
                return output, line[len(self.sentinel) :].strip()
            output.append(line)

    def run(self, command: str, stderr: Path, timeout: float = COMMAND_TIMEOUT_S) -> tuple[int, list[str]]:
        """Run ``command`` in the session; its exit status and its output lines (stderr to a file)."""
        self._send(f"{{\n{command}\n}} </dev/null 2>{stderr}\nprintf '\\n{self.sentinel}%s\\n' \"$?\"")
        output, status = self._until_sentinel(timeout)
        lines = "".join(output).splitlines()
        while lines and not lines[-1].strip():
            lines.pop()
        return int(status), lines

    def start_server(self, command: str, log: Path) -> None:
        self.stop_server()
        self._send(f"( exec {command}\n) </dev/null >{log} 2>&1 &\nprintf '{self.sentinel}%s\\n' \"$!\"")
        _, pid = self._until_sentinel(30)
        self.server_pid, self.server_log = int(pid), log
        deadline = time.monotonic() + SERVER_READY_S
        while time.monotonic() < deadline:
            if not _alive(self.server_pid):
                raise AssertionError(f"the server stopped: {command}\n{log.read_text(errors='replace')}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/readyz", timeout=2) as answer:
                    if answer.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.3)
        raise AssertionError(f"the server was not ready after {SERVER_READY_S} s: {command}")

    def stop_server(self) -> None:
        if self.server_pid is None:
            return
        pid, self.server_pid = self.server_pid, None
        if _alive(pid):
            os.kill(pid, signal.SIGTERM)
        try:
            self.run(f"wait {pid} 2>/dev/null; true", self.logs / "wait.stderr", timeout=30)
        except TimeoutError:
            os.kill(pid, signal.SIGKILL)
            self.run(f"wait {pid} 2>/dev/null; true", self.logs / "wait.stderr", timeout=30)

    def close(self) -> None:
        try:
            self.stop_server()
        finally:
            if self.process.stdin is not None:
                self.process.stdin.close()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.reader.join(timeout=10)
            if self.process.stdout is not None:
                self.process.stdout.close()


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def run_document(session: Session, checkout: Path, name: str, *, fresh: bool) -> list[str]:
    """Take every step of the document ``name`` in ``session``, from its folder; what differs from it."""
    problems: list[str] = []
    document = checkout / name
    cwd = document.parent
    session.stop_server()
    status, _ = session.run(f"cd {cwd}", session.logs / "cd.stderr")
    assert status == 0
    for number, step in enumerate(steps_of(document, root=checkout)):
        if step.install and not fresh:
            continue
        if step.file is not None:
            name, text = step.file
            (cwd / name).write_text(text, encoding="utf-8")
            continue
        command = _DOCUMENTED_PORT.sub(rf"\1:{session.port}", step.command)
        stderr = session.logs / f"{document.parent.name}-{number}.stderr"
        if step.server:
            session.start_server(command, session.logs / f"{document.parent.name}-{number}.server.log")
            continue
        status, output = session.run(command, stderr)
        if status != 0:
            said = stderr.read_text(errors="replace")[-3000:]
            problems.append(f"{step.where}: `{step.command}` exited {status}\n{said}")
            continue
        if step.expected and (
            len(output) != len(step.expected)
            or not all(matches(e, a) for e, a in zip(step.expected, output, strict=True))
        ):
            shown = "\n".join(output)
            wanted = "\n".join(step.expected)
            problems.append(f"{step.where}: `{step.command}` printed\n{shown}\nthe docs show\n{wanted}")
    session.stop_server()
    return problems


def _not_in_a_clone(folder: str, names: list[str]) -> set[str]:
    """What a clone would not hold: caches, build metadata, and the models the examples trained."""
    left_out = {n for n in names if n == "__pycache__" or n.endswith((".egg-info", ".pyc"))}
    if Path(folder).parent.name == "examples" and "models" in names:
        left_out.add("models")
    return left_out


def copy_checkout(target: Path) -> Path:
    """What a clone holds that the documents' commands use: the project, its sources, the examples."""
    target.mkdir(parents=True)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, target / name)
    for folder in ("src", "examples", "docs"):
        shutil.copytree(ROOT / folder, target / folder, ignore=_not_in_a_clone)
    return target


def session_env(port: int, *, fresh: bool) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("FLASKSERVE_", "PYTHON", "PYTEST", "VIRTUAL_ENV", "PIP_"))
    }
    venv_bin = str(Path(sys.executable).parent)
    path = [entry for entry in env.get("PATH", "").split(os.pathsep) if entry and entry != venv_bin]
    if not fresh:
        path.insert(0, venv_bin)
        env["VIRTUAL_ENV"] = str(Path(sys.executable).parent.parent)
    env["PATH"] = os.pathsep.join(path)
    env["FLASKSERVE_PORT"] = str(port)
    return env


@pytest.fixture
def terminal(tmp_path: Path) -> Iterator[Callable[[Path, bool], Session]]:
    """Open a session in a checkout, in this environment or a fresh one; closed, servers and all, after."""
    sessions: list[Session] = []
    logs = tmp_path / "logs"
    logs.mkdir()

    def open_session(checkout: Path, fresh: bool) -> Session:
        port = free_port()
        sessions.append(Session(checkout, session_env(port, fresh=fresh), port, logs))
        return sessions[-1]

    yield open_session
    for session in sessions:
        session.close()


@pytest.mark.parametrize("name", DOCUMENTS)
def test_every_marked_block_parses_into_commands(name: str) -> None:
    steps = steps_of(ROOT / name)

    assert [step for step in steps if step.command or step.file]
    assert all(step.command.strip() or step.file for step in steps)
    if name != "README.md":
        assert any(step.expected for step in steps), "each example shows what its client printed"


def test_only_marked_blocks_are_commands_and_outputs_follow_theirs(tmp_path: Path) -> None:
    document = tmp_path / "doc.md"
    document.write_text(
        "```\nrm -rf /\n```\n\n"
        "<!-- docs-test: shell -->\n```\n# a comment\necho 'a\nb' \\\n  c  # note\n{\"x\": 1}\ntrue\n```\n\n"
        "<!-- docs-test: output -->\n```\ndone\n```\n",
        encoding="utf-8",
    )

    steps = steps_of(document, root=tmp_path)

    assert [(s.command, s.expected) for s in steps] == [
        ("echo 'a\nb' \\\n  c  # note", ['{"x": 1}']),
        ("true", ["done"]),
    ]


@pytest.mark.parametrize(
    ("expected", "actual", "same"),
    [
        pytest.param('{"a":1,...}', '{"a":1,"b":[2]}', True, id="an ellipsis stands for anything"),
        pytest.param('{"a":1}', '{"a":1.0}', False, id="otherwise exact"),
    ],
)
def test_shown_output_is_compared_exactly_but_for_ellipses(expected: str, actual: str, same: bool) -> None:
    assert matches(expected, actual) is same


def test_an_output_or_a_failure_that_differs_from_the_docs_is_reported(
    tmp_path: Path, terminal: Callable[[Path, bool], Session]
) -> None:
    (tmp_path / "doc.md").write_text(
        "<!-- docs-test: shell -->\n```\n"
        'printf \'{"a": 1}\'\n{"a": 1}\n'
        'printf \'{"a": 1}\'\n{"a": 2}\n'
        "false\n```\n\n"
        "<!-- docs-test: file saved.txt -->\n```\nkept\n```\n\n"
        "<!-- docs-test: shell -->\n```\ncat saved.txt\n```\n\n"
        "<!-- docs-test: output -->\n```\nkept\n```\n",
        encoding="utf-8",
    )
    session = terminal(tmp_path, False)

    problems = run_document(session, tmp_path, "doc.md", fresh=False)

    assert [problem.splitlines()[0] for problem in problems] == [
        "doc.md:5: `printf '{\"a\": 1}'` printed",
        "doc.md:7: `false` exited 1",
    ]


@pytest.mark.skipif(FRESH, reason="the fresh form runs every document in one session")
@pytest.mark.parametrize("name", DOCUMENTS)
def test_the_documents_commands_answer_as_shown(
    name: str, tmp_path: Path, terminal: Callable[[Path, bool], Session]
) -> None:
    checkout = copy_checkout(tmp_path / "flaskserve")
    session = terminal(checkout, False)

    problems = run_document(session, checkout, name, fresh=False)

    assert problems == [], "\n\n".join(problems)


@pytest.mark.skipif(not FRESH, reason="slow (pip installs from PyPI): make docs-check")
def test_a_new_user_following_the_docs_from_a_fresh_virtualenv(
    tmp_path: Path, terminal: Callable[[Path, bool], Session]
) -> None:
    checkout = copy_checkout(tmp_path / "flaskserve")
    session = terminal(checkout, True)

    problems: list[str] = []
    for name in DOCUMENTS:
        problems += run_document(session, checkout, name, fresh=True)

    status, where = session.run("command -v flaskserve python", session.logs / "which.stderr")
    assert status == 0
    assert all(line.startswith(str(checkout / ".venv" / "bin")) for line in where), where
    assert problems == [], "\n\n".join(problems)
