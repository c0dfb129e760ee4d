"""An open-loop HTTP/1.1 load generator, run as its own process by predictor_vs_mlserver.py.

Requests are scheduled at a fixed rate whatever the server does (open loop), and each
latency is measured from the request's *scheduled* time, so a stalled server is
charged for the queue it causes (no coordinated omission). Keep-alive connections
from a fixed pool; raw asyncio streams with pre-encoded requests keep the generator's
own cost per request far below the servers'.

stdin: JSON spec {"host", "port", "path", "bodies": [str], "rate", "duration_s",
"connections"}; stdout: JSON {"sent", "ok", "errors", "latencies_ms": [...]}.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

import uvloop


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    if b"content-length:" not in head.lower():
        raise ValueError("response without Content-Length (chunked replies are not framed)")
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    if length:
        await reader.readexactly(length)
    return status


async def run(spec: dict[str, object]) -> dict[str, object]:
    host, port, path = str(spec["host"]), int(spec["port"]), str(spec["path"])  # type: ignore[call-overload]
    rate = float(spec["rate"])  # type: ignore[arg-type]
    duration = float(spec["duration_s"])  # type: ignore[arg-type]
    requests = [
        (
            f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body.encode())}\r\n\r\n"
        ).encode()
        + body.encode()
        for body in spec["bodies"]  # type: ignore[attr-defined]
    ]
    total = int(rate * duration)
    jobs: asyncio.Queue[tuple[float, bytes] | None] = asyncio.Queue()
    latencies: list[float] = []
    ok = errors = 0

    async def connection() -> None:
        nonlocal ok, errors
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while True:
                job = await jobs.get()
                if job is None:
                    return
                scheduled, request = job
                try:
                    writer.write(request)
                    status = await _read_response(reader)
                except (OSError, ValueError, asyncio.IncompleteReadError):
                    # A reply this client cannot frame counts as an error, never as a hang.
                    errors += 1
                    writer.close()
                    reader, writer = await asyncio.open_connection(host, port)
                    continue
                latencies.append((time.perf_counter() - scheduled) * 1000)
                if status == 200:
                    ok += 1
                else:
                    errors += 1
        finally:
            writer.close()

    workers = [asyncio.create_task(connection()) for _ in range(int(spec["connections"]))]  # type: ignore[call-overload]
    start = time.perf_counter() + 0.05
    for i in range(total):
        scheduled = start + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        jobs.put_nowait((scheduled, requests[i % len(requests)]))
    for _ in workers:
        jobs.put_nowait(None)
    # Bounded: a server that stops answering cannot hang the benchmark.
    _, pending = await asyncio.wait(workers, timeout=duration + 30)
    for task in pending:
        task.cancel()
    unanswered = total - ok - errors
    return {"sent": total, "ok": ok, "errors": errors + unanswered, "latencies_ms": latencies}


def main() -> None:
    spec = json.load(sys.stdin)
    result = uvloop.run(run(spec))
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
