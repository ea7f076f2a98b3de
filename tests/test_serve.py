"""`nextword serve`: the JSON-lines protocol, through the serve loop and as a real process."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from nextword import load
from nextword.serve import MAX_LINE_BYTES, MAX_SESSIONS, Server, bounded_lines, serve


@pytest.fixture(scope="module")
def predictor(trained_model: Path):
    return load(str(trained_model))


def exchange(predictor, *requests: str | bytes | dict) -> list[dict]:
    """The replies to `requests` (objects are sent as JSON), one line each."""
    lines = [r if isinstance(r, bytes) else (json.dumps(r) if isinstance(r, dict) else r).encode() for r in requests]
    replies = io.BytesIO()
    serve(predictor, io.BytesIO(b"\n".join(lines) + b"\n"), replies)
    out = replies.getvalue().decode("utf-8").splitlines()
    assert len(out) == len(requests)  # one reply a line, whatever the line held
    return [json.loads(line) for line in out]


def test_good_requests_are_answered_as_predict_answers(predictor) -> None:
    text = "anna gives the red ball to the "
    replies = exchange(
        predictor,
        {"text": text},
        {"text": text + "c", "k": 2, "id": "a"},
        {"text": "ben has ", "id": "b", "generate": {"max_words": 3, "seed": 1}},
    )
    assert replies[0] == {"predictions": [[w, pytest.approx(p, abs=1e-6)] for w, p in predictor.predict(text, 5)]}
    assert replies[1]["id"] == "a" and [w for w, _ in replies[1]["predictions"]] == [
        w for w, _ in predictor.predict(text + "c", 2)
    ]
    assert replies[2]["id"] == "b" and replies[2]["generated"] == predictor.generate("ben has ", max_words=3, seed=1)


def test_a_session_reads_only_what_changed(predictor) -> None:
    server = Server(predictor)
    document = "anna has the red ball . " * 50
    server.answer(json.dumps({"text": document, "id": "doc"}).encode())
    session = server.sessions["doc"]
    read = []
    original = predictor.pieces.run
    predictor.pieces.run = lambda tokens, state=None: read.append(tokens) or original(tokens, state)
    ends = ("b", "be", "ben", "ben ", "ben g")
    try:
        replies = [server.answer(json.dumps({"text": document + end, "id": "doc"}).encode()) for end in ends]
    finally:
        predictor.pieces.run = original
    for end, reply in zip(ends, replies):
        assert [w for w, _ in reply["predictions"]] == [w for w, _ in predictor.predict(document + end, 5)]
    assert server.sessions["doc"] is session
    assert all(not isinstance(tokens, list) or len(tokens) < 5 for tokens in read)  # never the whole document


@pytest.mark.parametrize(
    "line, error",
    [
        (b"{not json", "not JSON: Expecting property name enclosed in double quotes at character 1"),
        (b'{"text": "anna', "not JSON: Unterminated string starting at character 9"),
        (b"\xff\xfe", "not UTF-8"),
        (b"[1, 2]", "a JSON object"),
        (b"", "not JSON"),
        (b'{"text": "anna ", "colour": 1}', 'unknown field "colour"'),
        (b'{"text": "anna ", "generate": {"words": 3}}', 'unknown field "generate.words"'),
        (b'{"k": 3}', 'no "text"'),
        (b'{"text": 5}', '"text" must be a string'),
        (b'{"text": "anna ", "k": "5"}', '"k" must be an integer'),
        (b'{"text": "anna ", "k": true}', '"k" must be an integer'),
        (b'{"text": "anna ", "k": 0}', '"k" must be between 1 and 100'),
        (b'{"text": "anna ", "k": 1000000}', '"k" must be between 1 and 100'),
        (b'{"text": "anna ", "id": 7}', '"id" must be a string'),
        (b'{"text": "anna ", "generate": {"temperature": "hot"}}', '"generate.temperature" must be a number'),
        (b'{"text": "anna ", "generate": {"top_p": 2}}', "top_p"),
        (b'{"text": "anna ", "generate": {"max_words": 100000}}', "at most 1000"),
        (b'{"text": "\\ud800"}', "unpaired surrogate"),
        (b"[" * 100_000 + b"]" * 100_000, "not JSON this server reads"),
        (b'{"text": "anna ", "k": ' + b"9" * 5000 + b"}", "not JSON this server reads"),
    ],
)
def test_a_bad_request_gets_an_error_and_the_server_goes_on(predictor, line: bytes, error: str) -> None:
    bad, good = exchange(predictor, line, {"text": "anna has "})
    assert set(bad) == {"error"} and error in bad["error"]
    assert good["predictions"]


def test_a_line_too_long_is_skipped_without_being_held(predictor) -> None:
    huge = json.dumps({"text": "anna " * (MAX_LINE_BYTES // 5 + 10)}).encode()
    bad, good = exchange(predictor, huge, {"text": "anna has ", "id": "x"})
    assert "longer than 1,000,000 bytes" in bad["error"] and good["id"] == "x" and good["predictions"]
    reads = []

    class Spy(io.BytesIO):
        def readline(self, size: int = -1) -> bytes:
            line = super().readline(size)
            reads.append(len(line))
            return line

    assert list(bounded_lines(Spy(b"x" * 25 + b"\nok\nlast"), 10)) == [None, b"ok", b"last"]
    assert max(reads) <= 11


def test_sessions_are_bounded_by_forgetting_the_least_recently_used(predictor) -> None:
    server = Server(predictor)
    for i in range(MAX_SESSIONS + 5):
        assert "predictions" in server.answer(json.dumps({"text": "anna ", "id": str(i)}).encode())
    assert len(server.sessions) == MAX_SESSIONS
    assert "0" not in server.sessions and str(MAX_SESSIONS + 4) in server.sessions


def test_the_command_answers_each_line_at_once_and_exits_0_at_the_end(trained_model: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "nextword", "serve", str(trained_model)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        process.stdin.write(b'{"text": "anna gives the ", "id": "1"}\n')
        process.stdin.flush()
        first = json.loads(process.stdout.readline())  # answered before the next request is sent: flushed
        assert first["id"] == "1" and first["predictions"]
        process.stdin.write(b"oops\n")
        process.stdin.close()
        assert "error" in json.loads(process.stdout.readline())
        assert process.wait(timeout=60) == 0 and process.stdout.read() == b""
    finally:
        process.kill()
