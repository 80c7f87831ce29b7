"""The response header naming the process that answered.  Under `imgsvc serve --workers N` the kernel picks the
worker each connection lands on (SO_REUSEPORT); this header lets an operator, or the load-test harness, see the
spread."""
from __future__ import annotations

WORKER_HEADER = "x-imgsvc-worker"


def with_worker_header(app, worker: str):
    """``app`` (ASGI) answering every HTTP response with ``WORKER_HEADER: worker``."""
    header = (WORKER_HEADER.encode(), worker.encode())

    async def answer(scope, receive, send):
        if scope["type"] != "http":
            return await app(scope, receive, send)

        async def send_with_header(message):
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), header]}
            await send(message)

        return await app(scope, receive, send_with_header)

    return answer
