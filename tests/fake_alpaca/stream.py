"""A fake of Alpaca's trade_updates websocket, on loopback, speaking the protocol alpaca-py's TradingStream uses.

authenticate -> {"stream": "authorization", "data": {"status": "authorized"}};
listen -> {"stream": "listening", ...}; then every update pushed with
``push`` reaches every listening client. ``drop_connections`` closes them
abruptly (the client must reconnect, with back-off) and ``connections``
counts how many sessions were opened.
"""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

from websockets.asyncio.server import ServerConnection, serve


class FakeTradeUpdatesStream:
    def __init__(self, *, key: str, secret: str) -> None:
        self.key, self.secret = key, secret
        self.port = 0
        self.connections = 0
        self._listeners: set[ServerConnection] = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: Any = None
        self.listening = threading.Event()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"  # the stream URL is derived from it: ws://127.0.0.1:port/stream

    def start(self) -> FakeTradeUpdatesStream:
        self._thread.start()
        async def listen() -> Any:
            return await serve(self._session, "127.0.0.1", 0)

        self._server = asyncio.run_coroutine_threadsafe(listen(), self._loop).result(10)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        async def shutdown() -> None:
            self._server.close()
            await self._server.wait_closed()

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    async def _session(self, websocket: ServerConnection) -> None:
        self.connections += 1
        try:
            async for raw in websocket:
                message = json.loads(raw)
                if message.get("action") == "authenticate":
                    data = message.get("data", {})
                    ok = data.get("key_id") == self.key and data.get("secret_key") == self.secret
                    await websocket.send(json.dumps({"stream": "authorization", "data": {
                        "status": "authorized" if ok else "unauthorized", "action": "authenticate"}}))
                elif message.get("action") == "listen":
                    self._listeners.add(websocket)
                    await websocket.send(json.dumps({"stream": "listening", "data": {"streams": ["trade_updates"]}}))
                    self.listening.set()
        finally:
            self._listeners.discard(websocket)

    def push(self, update: dict[str, Any]) -> None:
        """Send one trade update ({"event": ..., "order": {...}}) to every listening client."""

        async def send() -> None:
            for websocket in list(self._listeners):
                await websocket.send(json.dumps({"stream": "trade_updates", "data": update}))

        asyncio.run_coroutine_threadsafe(send(), self._loop).result(10)

    def drop_connections(self) -> None:
        """Close every client connection without a goodbye, as a network drop would."""
        self.listening.clear()

        async def drop() -> None:
            for websocket in list(self._listeners):
                websocket.transport.abort()

        asyncio.run_coroutine_threadsafe(drop(), self._loop).result(10)
