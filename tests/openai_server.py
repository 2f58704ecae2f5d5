"""A loopback OpenAI-compatible chat-completions server with scripted faults.

It is a real HTTP server on 127.0.0.1 (a thread of the test process). Each
request takes the next behaviour from ``script`` (then ``default``): ``ok``,
``500``, ``429``, ``429ra`` (with ``Retry-After: 0``), ``400``, ``empty``,
``malformed`` (not JSON), ``truncated`` (``finish_reason: length``), ``missing``
(an answer without ``action``), ``badchoice`` (a 200 with its usage, whose choice
is a string instead of an object) or ``sleep:<seconds>``. ``rule``, when set, is
asked first with each request's body and may name the behaviour itself (a fault
that depends on what was sent: greedy requests only, a given Self-Refine round).
Every request body is recorded, and the most requests it was answering at once
(``peak_in_flight``).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeOpenAIServer:
    def __init__(self, answer: Callable[[dict], str] | None = None) -> None:
        self.script: list[str] = []
        self.default = "ok"
        self.rule: Callable[[dict], str | None] | None = None
        self.requests: list[dict] = []
        self.in_flight = self.peak_in_flight = 0
        self.answer = answer or (lambda body: f"answer {len(self.requests)}")
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as real servers do

            def log_message(self, *args):  # keep test output clean
                pass

            def do_POST(self):  # noqa: N802 - http.server's name
                with server._lock:
                    server.in_flight += 1
                    server.peak_in_flight = max(server.peak_in_flight, server.in_flight)
                try:
                    self._answer()
                finally:
                    with server._lock:
                        server.in_flight -= 1

            def _answer(self):
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length))
                with server._lock:
                    server.requests.append(body)
                    action = server.rule(body) if server.rule else None
                    if action is None:
                        action = (
                            server.script.pop(0) if server.script else server.default
                        )
                if action.startswith("sleep:"):
                    time.sleep(float(action.split(":")[1]))
                    action = "ok"
                if action in ("500", "429", "400", "429ra"):
                    headers = {"Retry-After": "0"} if action == "429ra" else {}
                    error = {"error": {"message": f"scripted {action}"}}
                    self._send(int(action[:3]), error, headers)
                    return
                usage = {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
                if action == "badchoice":
                    self._send(200, {"choices": ["not an object"], "usage": usage})
                    return
                text = "" if action == "empty" else server.answer(body)
                finish = "length" if action == "truncated" else "stop"
                if action == "truncated":
                    text = text[: len(text) // 2]
                elif action == "malformed":
                    text = "Sure! Here is the annotation: {summary: brief}"
                elif action == "missing":
                    data = json.loads(text)
                    data.pop("action", None)
                    text = json.dumps(data)
                self._send(
                    200,
                    {
                        "id": "chatcmpl-test",
                        "object": "chat.completion",
                        "created": int(time.time()),
                        "model": body.get("model", "test"),
                        "choices": [
                            {
                                "index": 0,
                                "message": {"role": "assistant", "content": text},
                                "finish_reason": finish,
                            }
                        ],
                        "usage": usage,
                    },
                )

            def _send(self, status: int, payload: dict, headers=None) -> None:
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    for name, value in (headers or {}).items():
                        self.send_header(name, value)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout tests)

        class Server(ThreadingHTTPServer):
            request_queue_size = 256  # many clients connect at once

        self.httpd = Server(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __enter__(self) -> FakeOpenAIServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def annotation_answer(body: dict) -> str:
    """A valid annotation that names its Self-Refine round and the segment."""
    messages = body["messages"]
    round_number = 1 + sum(m["role"] == "assistant" for m in messages)
    user = messages[1]["content"]
    segment = user.split("# Current segment, ", 1)[1].split("\n", 1)[0]
    return json.dumps(
        {
            "summary": {
                "brief": f"round {round_number} of {segment}",
                "detailed": "A person works at a table.",
            },
            "action": {
                "brief": "work at the table",
                "detailed": "Work at the table with both hands.",
                "actor": "a person",
            },
        }
    )
