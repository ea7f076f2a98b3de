"""`nextword serve`: next-word predictions over JSON lines, the way editor tools talk.

One request a line in, one reply a line out, in order:

    {"text": "the whole buffer so far", "k": 5, "id": "notes.txt", "generate": {"max_words": 8}}
    {"predictions": [["word", 0.31], ...], "id": "notes.txt", "generated": " and so on"}

Only "text" is required. "id" names a session (requests without one share a session of their own):
each session keeps what the model read of its last text, so a client may send its whole buffer at
every key and pays only for what changed since (`Session.set_text`). A request that cannot be
answered gets `{"error": "..."}` (with its "id" when it had one) and the server goes on; it stops,
with exit code 0, when its input ends."""

from __future__ import annotations

import json
from collections import OrderedDict
from typing import Any, BinaryIO, Iterator

from .errors import NextwordError
from .predict import Predictor
from .session import Session

MAX_LINE_BYTES = 1_000_000  # longer request lines are skipped unread, with an error
MAX_K = 100
MAX_GENERATED_WORDS = 1000
MAX_SESSIONS = 64  # beyond it, the session used least recently is forgotten (its next request reads anew)
MAX_ID_CHARS = 200
_INTEGER, _NUMBER = (int,), (int, float)
FIELDS = {"text": (str,), "k": _INTEGER, "id": (str,), "generate": (dict,)}
GENERATE_FIELDS = {"max_words": _INTEGER, "temperature": _NUMBER, "top_k": _INTEGER, "top_p": _NUMBER, "seed": _INTEGER}


class RequestError(NextwordError):
    """A request line that cannot be answered: not JSON, an unknown field, a value of the wrong type."""


def serve(predictor: Predictor, requests: BinaryIO, replies: BinaryIO) -> None:
    """Answer each line of `requests` with a line on `replies`, flushed at once, until `requests` ends."""
    server = Server(predictor)
    too_long = {"error": f"request line longer than {MAX_LINE_BYTES:,} bytes; it was skipped"}
    for line in bounded_lines(requests, MAX_LINE_BYTES):
        reply = server.answer(line) if line is not None else too_long
        replies.write(json.dumps(reply, ensure_ascii=False).encode("utf-8") + b"\n")
        replies.flush()


def bounded_lines(stream: BinaryIO, limit: int) -> Iterator[bytes | None]:
    """Each line of `stream` without its line break, or None for a line longer than `limit` bytes; never
    more than `limit` bytes held at once."""
    while line := stream.readline(limit + 1):
        if line.endswith(b"\n") or len(line) <= limit:
            yield line.rstrip(b"\n")
            continue
        while line and not line.endswith(b"\n"):  # the rest of the long line, read and dropped
            line = stream.readline(limit + 1)
        yield None


class Server:
    """The sessions of one server and the answer to each request."""

    def __init__(self, predictor: Predictor):
        self.predictor = predictor
        self.sessions: OrderedDict[str | None, Session] = OrderedDict()

    def answer(self, line: bytes) -> dict[str, Any]:
        request: dict[str, Any] = {}
        try:
            request = parse(line)
            session = self._session(request.get("id"))
            session.set_text(request["text"])
            reply: dict[str, Any] = {"predictions": [[word, p] for word, p in session.predict(request.get("k", 5))]}
            if "generate" in request:
                reply["generated"] = session.generate(**request["generate"])
        except NextwordError as exc:
            reply = {"error": str(exc)}
        return {**reply, **({"id": request["id"]} if "id" in request else {})}

    def _session(self, name: str | None) -> Session:
        if name not in self.sessions:
            if len(self.sessions) >= MAX_SESSIONS:
                self.sessions.popitem(last=False)
            self.sessions[name] = self.predictor.session()
        self.sessions.move_to_end(name)
        return self.sessions[name]


def parse(line: bytes) -> dict[str, Any]:
    """The request on `line`, its fields checked; RequestError says what is wrong with it."""
    try:
        request = json.loads(line.decode("utf-8"))
    except UnicodeDecodeError:
        raise RequestError("the request is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        # Some of json's messages end in "at" ("Unterminated string starting at"): the place is said once.
        raise RequestError(f"the request is not JSON: {exc.msg.removesuffix(' at')} at character {exc.pos}") from None
    except (ValueError, RecursionError) as exc:  # an integer of thousands of digits; arrays nested too deep
        raise RequestError(f"the request is not JSON this server reads: {str(exc)[:80]}") from None
    if not isinstance(request, dict):
        raise RequestError('a request is a JSON object, such as {"text": "once upon a ", "k": 5}')
    _check_fields(request, FIELDS, "")
    if "text" not in request:
        raise RequestError('the request has no "text"')
    if not 1 <= request.get("k", 5) <= MAX_K:
        raise RequestError(f'"k" must be between 1 and {MAX_K}; got {request["k"]}')
    if len(request.get("id", "")) > MAX_ID_CHARS:
        raise RequestError(f'"id" must be at most {MAX_ID_CHARS} characters')
    generate = request.get("generate", {})
    _check_fields(generate, GENERATE_FIELDS, "generate.")
    if not generate.get("max_words", 1) <= MAX_GENERATED_WORDS:
        raise RequestError(f'"generate.max_words" must be at most {MAX_GENERATED_WORDS}')
    for name in ("text", "id"):
        try:
            request.get(name, "").encode("utf-8")
        except UnicodeEncodeError:
            raise RequestError(f'"{name}" holds an unpaired surrogate (\\ud800-\\udfff): it is not text') from None
    return request


def _check_fields(given: dict[str, Any], known: dict[str, tuple[type, ...]], prefix: str) -> None:
    for name, value in given.items():
        if name not in known:
            raise RequestError(f'unknown field "{prefix}{name}"; known: {", ".join(prefix + k for k in known)}')
        if isinstance(value, bool) or not isinstance(value, known[name]):
            kind = {str: "a string", int: "an integer", dict: "an object"}[known[name][0]]
            raise RequestError(
                f'"{prefix}{name}" must be {"a number" if known[name] is _NUMBER else kind}; '
                f"got {json.dumps(value)[:40]}"
            )
