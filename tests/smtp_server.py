"""A real SMTP server on loopback (aiosmtpd) that keeps what it receives."""

from __future__ import annotations

import email
import email.policy
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import attrs
from aiosmtpd.controller import Controller


@attrs.define
class Received:
    """One message the server accepted: its envelope recipients and the parsed message."""

    rcpt_tos: list[str]
    message: EmailMessage


class RecordingHandler:
    """Accepts every message; refuses recipients whose address starts with ``refuse``."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.lock = threading.Lock()

    async def handle_RCPT(  # noqa: N802 - aiosmtpd's handler protocol
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any
    ) -> str:
        if address.startswith("refuse"):
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(  # noqa: N802 - aiosmtpd's handler protocol
        self, server: Any, session: Any, envelope: Any
    ) -> str:
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        with self.lock:
            self.received.append(Received(list(envelope.rcpt_tos), parsed))
        return "250 OK"

    def clear(self) -> None:
        with self.lock:
            self.received.clear()


def free_port() -> int:
    """A TCP port nobody listens on right now (on loopback)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def smtp_server() -> Iterator[tuple[RecordingHandler, int]]:
    """Run a recording SMTP server on 127.0.0.1; yields its handler and port."""
    handler = RecordingHandler()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


# ------------------------------------------------------------ in another process
# The 10,000-message test runs the server in its own process: in a thread it
# would share the GIL with the client and the database work it measures.


_MESSAGE_ID = re.compile(rb"^Message-ID: *(\S+)", re.MULTILINE | re.IGNORECASE)


class _LineHandler:
    """Writes one line per accepted message: the recipient, a tab, the Message-ID."""

    def __init__(self, path: str) -> None:
        self.out = open(path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115 - the process's life

    async def handle_DATA(  # noqa: N802 - aiosmtpd's handler protocol
        self, server: Any, session: Any, envelope: Any
    ) -> str:
        found = _MESSAGE_ID.search(envelope.content)  # cheap: the server shares 2 cores
        message_id = found.group(1).decode() if found else ""
        for rcpt in envelope.rcpt_tos:
            self.out.write(f"{rcpt}\t{message_id}\n")
        return "250 OK"


@contextmanager
def smtp_server_process(log: Path) -> Iterator[int]:
    """Run a SMTP server on 127.0.0.1 in a child process; yields its port.

    Each accepted message appends ``recipient<TAB>Message-ID`` to ``log``.
    """
    port = free_port()
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.smtp_server", str(port), str(log)],
        cwd=Path(__file__).resolve().parent.parent,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline or child.poll() is not None:
                    raise RuntimeError("the SMTP server process did not start") from None
                time.sleep(0.05)
        yield port
    finally:
        child.terminate()
        child.wait(timeout=10)


def _serve(port: int, path: str) -> None:
    controller = Controller(_LineHandler(path), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        signal.sigwait({signal.SIGTERM, signal.SIGINT})
    finally:
        controller.stop()


if __name__ == "__main__":
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    _serve(int(sys.argv[1]), sys.argv[2])
