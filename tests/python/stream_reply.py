"""Streams one chat reply through a sluicegate gateway with the official `openai` package.

Usage: python3 stream_reply.py BASE_URL MODEL PROMPT

Prints one JSON line: the streamed text, the finish reason, the number of chunks with text,
the usage the gateway reported, and the routing headers of the response.
"""

import json
import sys

from openai import OpenAI


def main() -> None:
    base_url, model, prompt = sys.argv[1], sys.argv[2], sys.argv[3]
    client = OpenAI(base_url=base_url, api_key="test", max_retries=0, timeout=120)
    raw = client.chat.completions.with_raw_response.create(
        model=model,
        messages=[{"role": "user", "content": prompt}],
        temperature=0,
        max_tokens=40,
        stream=True,
        stream_options={"include_usage": True},
    )
    text, finish, pieces, usage = "", None, 0, None
    for chunk in raw.parse():
        if chunk.usage is not None:
            usage = {
                "prompt_tokens": chunk.usage.prompt_tokens,
                "completion_tokens": chunk.usage.completion_tokens,
            }
        for choice in chunk.choices:
            if choice.delta.content:
                text += choice.delta.content
                pieces += 1
            if choice.finish_reason:
                finish = choice.finish_reason
    print(
        json.dumps(
            {
                "content": text,
                "finish_reason": finish,
                "pieces": pieces,
                "usage": usage,
                "route": raw.headers.get("x-sluicegate-route"),
                "fallback": raw.headers.get("x-sluicegate-fallback"),
            }
        )
    )


if __name__ == "__main__":
    main()
