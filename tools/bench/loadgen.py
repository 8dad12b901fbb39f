"""A closed-loop HTTP load generator: N concurrent clients, each one request at a time.

asyncio on raw sockets, so one client costs the machine far less than a
request costs the server (this box has two cores, shared with gunicorn and
PostgreSQL). gunicorn's sync workers close the connection after every answer,
so each request opens its own connection, and its latency is measured from
the connect to the last byte of the answer.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class LoadResult:
    latencies: list[float] = field(default_factory=list)  # seconds, successful requests only
    statuses: Counter[int] = field(default_factory=Counter)
    order_statuses: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    elapsed: float = 0.0  # from the first request sent to the last answer received

    @property
    def ok(self) -> int:
        return len(self.latencies)

    @property
    def throughput(self) -> float:
        return self.ok / self.elapsed if self.elapsed else 0.0

    def merge(self, other: LoadResult) -> None:
        self.latencies.extend(other.latencies)
        self.statuses.update(other.statuses)
        self.order_statuses.update(other.order_statuses)
        self.errors.update(other.errors)
        self.elapsed += other.elapsed


def _request(host: str, port: int, path: str, token: str, body: bytes) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\n"
        f"Host: {host}:{port}\r\n"
        f"Authorization: Token {token}\r\n"
        "Content-Type: application/json\r\n"
        "Accept: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode() + body


async def _one(host: str, port: int, raw: bytes, timeout: float) -> tuple[int, bytes]:
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    try:
        writer.write(raw)
        data = await asyncio.wait_for(reader.read(), timeout)  # until the server closes
    finally:
        writer.close()
    if not data.startswith(b"HTTP/1."):
        raise ConnectionError("no HTTP answer")
    status = int(data[9:12])
    _, _, payload = data.partition(b"\r\n\r\n")
    return status, payload


async def _client(
    *,
    host: str,
    port: int,
    path: str,
    token: str,
    make_body: Callable[[int], dict],
    deadline: float,
    expect_status: int,
    result: LoadResult,
    timeout: float,
    first_sent: list[float],
    last_done: list[float],
) -> None:
    seq = 0
    while time.perf_counter() < deadline:
        seq += 1
        raw = _request(host, port, path, token, json.dumps(make_body(seq)).encode())
        start = time.perf_counter()
        if not first_sent:
            first_sent.append(start)
        try:
            status, payload = await _one(host, port, raw, timeout)
        except (TimeoutError, OSError, ConnectionError, ValueError) as exc:
            result.errors[type(exc).__name__] += 1
            await asyncio.sleep(0.05)
            continue
        done = time.perf_counter()
        last_done[0] = max(last_done[0], done)
        result.statuses[status] += 1
        if status == expect_status:
            result.latencies.append(done - start)
        try:
            answer = json.loads(payload) if payload else {}
        except ValueError:
            answer = {}
        if isinstance(answer, dict) and "status" in answer and isinstance(answer["status"], str):
            result.order_statuses[answer["status"]] += 1
        elif isinstance(answer, dict) and isinstance(answer.get("order"), dict):
            result.order_statuses[str(answer["order"].get("status"))] += 1


def run(
    *,
    host: str,
    port: int,
    path: str,
    tokens: list[str],
    make_body: Callable[[int, int], dict],
    seconds: float,
    expect_status: int = 201,
    timeout: float = 30.0,
) -> LoadResult:
    """len(tokens) clients, client i authenticating with tokens[i], for ``seconds``; body = make_body(i, seq)."""

    async def main() -> LoadResult:
        result = LoadResult()
        first_sent: list[float] = []
        last_done = [0.0]
        deadline = time.perf_counter() + seconds
        await asyncio.gather(
            *(
                _client(
                    host=host,
                    port=port,
                    path=path,
                    token=token,
                    make_body=lambda seq, i=i: make_body(i, seq),
                    deadline=deadline,
                    expect_status=expect_status,
                    result=result,
                    timeout=timeout,
                    first_sent=first_sent,
                    last_done=last_done,
                )
                for i, token in enumerate(tokens)
            )
        )
        if first_sent and last_done[0]:
            result.elapsed = last_done[0] - first_sent[0]
        return result

    return asyncio.run(main())


def burst(*, host: str, port: int, path: str, token: str, bodies: list[dict], expect_status: int = 201,
          timeout: float = 60.0) -> LoadResult:
    """One request per body, all sent at once (one connection each); latency from each one's connect."""

    async def one(body: dict, result: LoadResult) -> None:
        raw = _request(host, port, path, token, json.dumps(body).encode())
        start = time.perf_counter()
        try:
            status, payload = await _one(host, port, raw, timeout)
        except (TimeoutError, OSError, ConnectionError, ValueError) as exc:
            result.errors[type(exc).__name__] += 1
            return
        result.statuses[status] += 1
        if status == expect_status:
            result.latencies.append(time.perf_counter() - start)
        try:
            answer = json.loads(payload) if payload else {}
        except ValueError:
            answer = {}
        if isinstance(answer, dict) and isinstance(answer.get("status"), str):
            result.order_statuses[answer["status"]] += 1

    async def main() -> LoadResult:
        result = LoadResult()
        started = time.perf_counter()
        await asyncio.gather(*(one(body, result) for body in bodies))
        result.elapsed = time.perf_counter() - started
        return result

    return asyncio.run(main())
