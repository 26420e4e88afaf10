"""A TCP proxy on loopback in front of a server (the moto server), taken down on demand: a
provider outage without a single request answered to one side and lost to the other.

Once :meth:`OutageProxy.down` is called its port refuses connections, and each open
connection is closed when its client sends the next bytes, which are never forwarded. A
request forwarded before gets its whole answer (the way back stays open): HTTP clients
(botocore) send a request on a kept-alive connection only after reading the last answer.
So the server saw exactly the requests whose answers the client got. :meth:`OutageProxy.up`
serves again on the same port (the server is back).
"""

from __future__ import annotations

import socket
import threading
from contextlib import suppress


def _close(*socks: socket.socket) -> None:
    for s in socks:
        with suppress(OSError):
            s.shutdown(socket.SHUT_RDWR)
        with suppress(OSError):
            s.close()


class OutageProxy:
    def __init__(self, upstream_port: int) -> None:
        self.upstream = ("127.0.0.1", upstream_port)
        self.is_down = False
        self.refused_requests = 0
        """Connections closed on a request after the proxy went down."""
        self._lock = threading.Lock()
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._server.getsockname()[1])
        self._thread = threading.Thread(target=self._accept, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> OutageProxy:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.down()
        self._thread.join(5)

    def down(self) -> None:
        """From now on: connections refused, open ones closed at their next request."""
        with self._lock:
            self.is_down = True
        _close(self._server)

    def up(self) -> None:
        """Serve again, on the same port."""
        with self._lock:
            self.is_down = False
        self._server = socket.create_server(("127.0.0.1", self.port))
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.upstream)
            threading.Thread(target=self._requests, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._answers, args=(upstream, client), daemon=True).start()

    def _requests(self, client: socket.socket, upstream: socket.socket) -> None:
        try:
            while data := client.recv(65536):
                with self._lock:  # decided and forwarded under the lock: down() waits
                    if self.is_down:
                        self.refused_requests += 1
                        break
                    upstream.sendall(data)
        except OSError:
            pass
        _close(client, upstream)

    @staticmethod
    def _answers(upstream: socket.socket, client: socket.socket) -> None:
        try:
            while data := upstream.recv(65536):
                client.sendall(data)
        except OSError:
            pass
        _close(client, upstream)
