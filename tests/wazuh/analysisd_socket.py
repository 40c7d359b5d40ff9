"""A real Unix datagram socket that plays analysisd's queue in tests."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

from iocscope.wazuh.queue import MAX_DATAGRAM_BYTES


class Analysisd:
    """A bound datagram socket that receives what the writer sends."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(5.0)

    def receive(self) -> bytes:
        return self.sock.recv(MAX_DATAGRAM_BYTES + 1024)

    def receive_all(self) -> list[bytes]:
        received = []
        self.sock.setblocking(False)
        try:
            while True:
                received.append(self.sock.recv(MAX_DATAGRAM_BYTES + 1024))
        except BlockingIOError:
            pass
        finally:
            self.sock.settimeout(5.0)
        return received

    def close(self) -> None:
        self.sock.close()
        self.path.unlink(missing_ok=True)


class CollectingAnalysisd(Analysisd):
    """Reads datagrams in a thread as fast as they come, like the real analysisd.

    The kernel queues only a few datagrams per Unix socket
    (net.unix.max_dgram_qlen, 10 by default), so a test that sends many
    events must keep reading while the daemon writes.
    """

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.sock.settimeout(0.05)
        self._messages: list[bytes] = []
        self._lock = threading.Lock()
        self._running = True
        self._thread = threading.Thread(target=self._collect, daemon=True)
        self._thread.start()

    def _collect(self) -> None:
        while self._running:
            try:
                data = self.sock.recv(MAX_DATAGRAM_BYTES + 1024)
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self._messages.append(data)

    def receive_all(self) -> list[bytes]:
        """Return (and forget) the datagrams collected so far."""
        with self._lock:
            taken, self._messages = self._messages, []
        return taken

    def close(self) -> None:
        self._running = False
        self._thread.join(timeout=5)
        super().close()
