"""A simple upstream for the replay-scale and faults workloads: for every
connection, read one request (up to its blank line), send the whole of a file
with sendfile(2), shut down the write half, and close once the client has
closed. Runs until it is signalled.

    python3 download_server.py PORT FILE
"""

import os
import signal
import socket
import sys
import threading


def serve(conn: socket.socket, path: str) -> None:
    with conn:
        conn.settimeout(300)
        request = b""
        for _ in range(10_000):
            if b"\r\n\r\n" in request:
                break
            chunk = conn.recv(4096)
            if not chunk:
                return
            request += chunk
        with open(path, "rb") as f:
            conn.sendfile(f)
        conn.shutdown(socket.SHUT_WR)
        for _ in range(10_000):
            if not conn.recv(4096):
                break


def main() -> int:
    port, path = int(sys.argv[1]), sys.argv[2]
    if not os.path.isfile(path):
        print(f"download_server: no such file: {path}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(64)
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=serve, args=(conn, path), daemon=True).start()


if __name__ == "__main__":
    sys.exit(main())
