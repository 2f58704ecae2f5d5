"""An asyncio OpenAI-compatible server answering after a fixed latency (aiohttp).

Cheap per request, so that a client benchmark measures the client. Prints its
base URL on the first line, then serves until killed.

    python -m benchmarks._latency_server --latency 0.05
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from aiohttp import web

ANSWER = json.dumps(
    {
        "summary": {
            "brief": "A person works.",
            "detailed": "A person works at a table.",
        },
        "action": {
            "brief": "work at the table",
            "detailed": "Work at the table.",
            "actor": "a person",
        },
    }
)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--latency", type=float, default=0.05)
    args = parser.parse_args()

    async def completions(request: web.Request) -> web.Response:
        body = await request.json()
        await asyncio.sleep(args.latency)
        return web.json_response(
            {
                "id": "bench",
                "object": "chat.completion",
                "created": 0,
                "model": body.get("model", "bench"),
                "choices": [
                    {
                        "index": 0,
                        "finish_reason": "stop",
                        "message": {"role": "assistant", "content": ANSWER},
                    }
                ],
                "usage": {
                    "prompt_tokens": 1,
                    "completion_tokens": 1,
                    "total_tokens": 2,
                },
            }
        )

    app = web.Application()
    app.router.add_post("/v1/chat/completions", completions)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    sys.stdout.write(f"http://127.0.0.1:{port}/v1\n")
    sys.stdout.flush()
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
