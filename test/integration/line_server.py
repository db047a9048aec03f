"""test/integration/line_server.py — what the scripted SMTP servers (fake_mta.py, deferring_mta.py)
share: a connection thread that reads lines from a bounded buffer, and the accept loop.

Each server subclasses LineConnection (its run() speaks its SMTP) and calls serve() from main();
serve() writes RECORD_DIR/ready once listening and runs until the process is killed (SIGTERM).
Every connection thread is a daemon and dies with the process.
"""

import os
import socket
import threading


class Close(Exception):
    """The connection ends here (the peer closed, a limit, a script said so)."""


class LineConnection(threading.Thread):
    max_buffer = 64 * 1024 * 1024

    def __init__(self, sock, index):
        super().__init__(daemon=True)
        self.sock = sock
        self.index = index  # 1 for the first accepted connection
        self.buf = b""

    def received(self, data):
        """Called with every chunk read, before it is buffered (for recording)."""

    def fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise Close("peer closed")
        self.received(data)
        self.buf += data
        if len(self.buf) > self.max_buffer:
            raise Close("buffer limit")

    def readline(self):
        while True:
            i = self.buf.find(b"\n")
            if i >= 0:
                line, self.buf = self.buf[: i + 1], self.buf[i + 1:]
                return line
            self.fill()


def serve(listen, record_dir, make_connection):
    """Listen on HOST:PORT (IPv6 in brackets); for each accepted socket start
    make_connection(sock, index)."""
    host, _, port = listen.rpartition(":")
    host = host.strip("[]")
    srv = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((host, int(port)))
    srv.listen(128)
    with open(os.path.join(record_dir, "ready"), "w") as f:
        f.write(str(os.getpid()))
    index = 0
    while True:
        sock, _ = srv.accept()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        index += 1
        make_connection(sock, index).start()
