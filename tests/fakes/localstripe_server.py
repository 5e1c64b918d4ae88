"""Run localstripe on 127.0.0.1 with its state in a directory of the caller's choosing.

localstripe listens on every interface and pickles its state to /tmp by default; tests must
do neither. Usage: python localstripe_server.py <data dir>   (prints the port it listens on)
"""

from __future__ import annotations

import pickle
import socket
import sys
from pathlib import Path

from aiohttp import web
from localstripe import resources

STATE = Path(sys.argv[1]) / "localstripe.pickle"


def _dump_to_disk(self):
    with STATE.open("wb") as f:
        pickle.dump(self, f, protocol=pickle.HIGHEST_PROTOCOL)


resources.Store.dump_to_disk = _dump_to_disk

from localstripe.server import app  # noqa: E402 - after the patch above

sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
sock.bind(("127.0.0.1", 0))
print(sock.getsockname()[1], flush=True)
web.run_app(app, sock=sock, print=None, access_log=None)
