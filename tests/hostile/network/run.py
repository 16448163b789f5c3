"""Reaches for the network: a TEST-NET address (RFC 5737, never a real host) and loopback."""
import json
import os
import socket
import threading
from pathlib import Path

external = False
try:
    with socket.create_connection(("192.0.2.1", 80), timeout=2):
        external = True
except OSError as exc:
    print("external connection failed:", exc)

server = socket.socket()
server.bind(("127.0.0.1", 0))
server.listen(1)
port = server.getsockname()[1]
threading.Thread(target=lambda: server.accept()[0].sendall(b"pong"), daemon=True).start()
with socket.create_connection(("127.0.0.1", port), timeout=2) as client:
    loopback = client.recv(4) == b"pong"
(Path(os.environ["FMBUILD_OUT"]) / "metrics.json").write_text(json.dumps({"external": external, "loopback": loopback}))
