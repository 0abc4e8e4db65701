"""A local OpenAI-compatible ``/v1/chat/completions`` server for reporter tests: scripted, recording."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Reply = Callable[[dict[str, Any]], tuple[int, dict[str, Any] | str]]


def chat_answer(content: str, finish_reason: str = "stop") -> tuple[int, dict[str, Any]]:
    """A 200 chat completion carrying ``content``."""
    return 200, {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": finish_reason}
        ],
        "usage": {"prompt_tokens": 100, "completion_tokens": 20},
    }


@dataclass
class ChatServer:
    """A local /v1/chat/completions server: answers with ``replies`` in turn and records every request."""

    url: str = ""
    replies: list[Reply] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    delay: float = 0.0  # seconds before answering (to provoke client timeouts)

    def answer(self, content: str, finish_reason: str = "stop") -> None:
        """Queue a chat completion carrying ``content``."""
        self.replies.append(lambda body: chat_answer(content, finish_reason))

    def fail(self, status: int, text: str = "model overloaded") -> None:
        """Queue an HTTP error."""
        self.replies.append(lambda body: (status, text))

    def next_reply(self, body: dict[str, Any]) -> tuple[int, dict[str, Any] | str]:
        if not self.replies:
            return 500, "no scripted reply left"
        return self.replies.pop(0)(body)


@contextlib.contextmanager
def serve_chat() -> Iterator[ChatServer]:
    """A ChatServer on 127.0.0.1 (any free port), stopped on exit."""
    server_state = ChatServer()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            server_state.requests.append(body)
            server_state.headers.append(dict(self.headers))
            if self.path != "/v1/chat/completions":
                status, payload = 404, f"no route {self.path}"
            else:
                time.sleep(server_state.delay)
                status, payload = server_state.next_reply(body)
            data = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
            try:
                self.send_response(status)
                self.send_header(
                    "Content-Type", "text/plain" if isinstance(payload, str) else "application/json"
                )
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (timeout tests)

        def log_message(self, format: str, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    server_state.url = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield server_state
    finally:
        httpd.shutdown()
        httpd.server_close()
