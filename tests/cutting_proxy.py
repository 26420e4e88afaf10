"""A TCP proxy on loopback that cuts connections: a relay that drops them mid-batch.

``anywhere``: each connection is cut after a random number of bytes from the client
(mid-command, mid-message). ``after-data``: after a random number of messages, right
after the client sent a message's end of data (``CRLF.CRLF``) and before the relay's
answer comes back: the relay keeps the message, the client cannot know it did.
"""

from __future__ import annotations

import random
import socket
import threading
from contextlib import suppress
from typing import Literal

END_OF_DATA = b"\r\n.\r\n"


class CuttingProxy:
    def __init__(
        self,
        upstream_port: int,
        cut_after: tuple[int, int],
        mode: Literal["anywhere", "after-data"] = "anywhere",
    ) -> None:
        self.upstream = ("127.0.0.1", upstream_port)
        self.cut_after = cut_after
        self.mode = mode
        self.cuts = 0
        self.connections = 0
        self.cutting = True
        self._lock = threading.Lock()
        self._rand = random.Random(20)
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._server.getsockname()[1])
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def __enter__(self) -> CuttingProxy:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        with suppress(OSError):
            self._server.close()
        self._thread.join(5)

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.upstream)
            with self._lock:
                self.connections += 1
                budget = self._rand.randint(*self.cut_after) if self.cutting else -1
            target = self._pipe_messages if self.mode == "after-data" else self._pipe
            threading.Thread(target=target, args=(client, upstream, budget), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, -1), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, budget: int) -> None:
        """Copy ``src`` to ``dst``; after ``budget`` bytes (-1: never) close both."""
        cut = False
        try:
            while True:
                data = src.recv(4096)
                if not data:
                    break
                if budget >= 0 and len(data) >= budget:
                    dst.sendall(data[:budget])
                    cut = True
                    break
                budget = budget - len(data) if budget >= 0 else -1
                dst.sendall(data)
        except OSError:
            pass
        finally:
            if cut:
                with self._lock:
                    self.cuts += 1
            for s in (src, dst):
                with suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                with suppress(OSError):
                    s.close()

    def _pipe_messages(self, src: socket.socket, dst: socket.socket, budget: int) -> None:
        """Copy the client's stream upstream; after ``budget`` ends of data (-1: never),
        close the client's side only, so the relay still takes the message it received."""
        tail = b""
        try:
            while True:
                data = src.recv(4096)
                if not data:
                    break
                seen = tail + data
                at = -1
                while budget > 0:
                    at = seen.find(END_OF_DATA, at + 1)
                    if at < 0:
                        break
                    budget -= 1
                if budget == 0 and at >= 0:
                    dst.sendall(data[: at + len(END_OF_DATA) - len(tail)])
                    with self._lock:
                        self.cuts += 1
                    with suppress(OSError):
                        src.shutdown(socket.SHUT_RDWR)
                    with suppress(OSError):
                        src.close()
                    return  # the relay's answer then fails to reach the client: both close
                tail = seen[-(len(END_OF_DATA) - 1) :]
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            with suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            with suppress(OSError):
                s.close()
