"""Drives a sluicegate gateway with the official `openai` package.

Usage: python3 openai_client.py BASE_URL   (e.g. http://127.0.0.1:8080/v1)

Prints one JSON line with what each call returned; the Rust test `python.rs` asserts on it.
"""

import json
import sys

import openai
from openai import OpenAI


def main() -> None:
    base_url = sys.argv[1]
    client = OpenAI(base_url=base_url, api_key="test", max_retries=0, timeout=30)
    messages = [{"role": "user", "content": "Say hello"}]
    results = {"openai_version": openai.__version__}

    completion = client.chat.completions.create(model="auto", messages=messages)
    choice = completion.choices[0]
    results["complete"] = {
        "object": completion.object,
        "model": completion.model,
        "content": choice.message.content,
        "finish_reason": choice.finish_reason,
        "total_tokens": completion.usage.total_tokens if completion.usage else None,
    }

    stream = client.chat.completions.create(
        model="auto",
        messages=messages,
        stream=True,
        stream_options={"include_usage": True},
    )
    text, finish_reason, usage, chunks = "", None, None, 0
    for chunk in stream:
        chunks += 1
        if chunk.usage is not None:
            usage = chunk.usage.total_tokens
        for c in chunk.choices:
            text += c.delta.content or ""
            finish_reason = c.finish_reason or finish_reason
    results["stream"] = {
        "chunks": chunks,
        "content": text,
        "finish_reason": finish_reason,
        "total_tokens": usage,
    }

    try:
        client.chat.completions.create(model="no-such-model", messages=messages)
        results["error"] = {"raised": None}
    except openai.NotFoundError as e:
        results["error"] = {
            "raised": type(e).__name__,
            "status": e.status_code,
            "code": e.code,
        }
    except openai.APIError as e:
        results["error"] = {"raised": type(e).__name__, "message": str(e)}

    print(json.dumps(results))


if __name__ == "__main__":
    main()
