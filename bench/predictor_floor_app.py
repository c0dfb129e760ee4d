"""The HTTP floor: an ASGI app that answers a fixed JSON body and does nothing else.

Served by the same uvicorn + httptools + uvloop stack as the predictor, it measures
what one request costs on this machine before any work is done, so the predictor's
numbers can be read as "floor + Flywheel's own work".
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

_BODY = b'{"score":0.5,"confidence":0.5}'


async def app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(_BODY)).encode()),
    ]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": _BODY})
