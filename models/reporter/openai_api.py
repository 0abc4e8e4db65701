"""``openai`` backend: an OpenAI-compatible ``/chat/completions`` endpoint (vLLM, Ollama, TGI, ...).

Images go inline as ``data:image/png;base64`` URLs. Connection errors, timeouts, 429 and 5xx answers
are retried with exponential back-off; anything else fails at once. Every error names the URL.
"""

from __future__ import annotations

import base64
import time
from typing import Any

import httpx
from pydantic import SecretStr

from models.reporter.chat import BackendError, ChatMessage, Completion, Skeleton, message_parts
from models.reporter.config import GenerationSettings

RETRY_STATUS = {408, 429, 500, 502, 503, 504}


def _content(message: ChatMessage) -> str | list[dict[str, Any]]:
    if not message.images:
        return message.text
    return [
        {"type": "text", "text": part}
        if isinstance(part, str)
        else {
            "type": "image_url",
            "image_url": {"url": f"data:image/png;base64,{base64.b64encode(part.png).decode()}"},
        }
        for part in message_parts(message)
    ]


class OpenAIBackend:
    """Chat completions over HTTP; ``external``, so callers de-identify what they send."""

    name = "openai"
    external = True
    weights_sha256: str | None = None  # an endpoint does not disclose its weights

    def __init__(
        self,
        url: str,
        model: str,
        generation: GenerationSettings,
        *,
        api_key: SecretStr | None = None,
        timeout: float = 120.0,
        retries: int = 2,
        backoff: float = 1.0,
    ) -> None:
        self.url = url.rstrip("/")
        self.endpoint = f"{self.url}/chat/completions"
        self.model = model
        self.generation = generation
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        headers = {"Authorization": f"Bearer {api_key.get_secret_value()}"} if api_key else {}
        self._client = httpx.Client(timeout=timeout, headers=headers)

    def identity(self) -> dict[str, str | None]:
        """Backend, endpoint and model name (the same name on another server may be another model)."""
        return {"backend": self.name, "url": self.url, "model": self.model}

    def _body(self, messages: list[ChatMessage]) -> dict[str, Any]:
        g = self.generation
        return {
            "model": self.model,
            "messages": [{"role": m.role, "content": _content(m)} for m in messages],
            "max_tokens": g.max_new_tokens,
            "temperature": g.temperature,
            "top_p": g.top_p,
            "stream": False,
        }

    def complete(self, messages: list[ChatMessage], skeleton: Skeleton | None = None) -> Completion:
        """POST the chat; retry transient failures; the answer's text and whether it hit the limit.

        The skeleton is not sent: endpoints' guided decoding (vLLM's ``guided_json``, OpenAI's
        ``response_format``) differ; the validator holds the answer to the findings instead.
        """
        body = self._body(messages)
        last = ""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            try:
                response = self._client.post(self.endpoint, json=body)
            except httpx.TimeoutException:
                last = f"no answer within {self.timeout:g} s"
                continue
            except httpx.TransportError as exc:
                last = f"cannot connect ({type(exc).__name__}: {exc})"
                continue
            if response.status_code in RETRY_STATUS:
                last = f"HTTP {response.status_code}: {response.text[:200]}"
                continue
            if response.status_code != 200:
                raise BackendError(
                    f"reporter endpoint {self.endpoint} refused the request: "
                    f"HTTP {response.status_code}: {response.text[:300]}"
                )
            return self._completion(response)
        raise BackendError(
            f"reporter endpoint {self.endpoint} failed after {self.retries + 1} attempt(s): {last}"
        )

    def _completion(self, response: httpx.Response) -> Completion:
        try:
            data = response.json()
            choice = data["choices"][0]
            text = choice["message"]["content"] or ""
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise BackendError(
                f"reporter endpoint {self.endpoint} answered without a chat completion: {response.text[:300]}"
            ) from exc
        usage = data.get("usage") or {}
        return Completion(
            text=text,
            truncated=choice.get("finish_reason") == "length",
            prompt_tokens=usage.get("prompt_tokens"),
            completion_tokens=usage.get("completion_tokens"),
        )
