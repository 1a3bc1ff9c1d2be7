"""A throw-away PostgreSQL server on loopback for the scale-out tests and benchmarks.

Uses Debian's ``postgresql`` package (``.ci/run`` installs it).  The cluster lives in a
temporary folder, listens on 127.0.0.1 on a free port, trusts local connections, and is
removed afterwards.  PostgreSQL refuses to run as root, so as root it runs as the
``postgres`` system user.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Iterator


def pg_bin() -> Path | None:
    """The newest installed PostgreSQL server's bin folder, or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_owner(cmd: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *cmd]
    return cmd


@contextlib.contextmanager
def postgres_server(db: str = "hpo") -> Iterator[str]:
    """Start a private PostgreSQL server; yield a SQLAlchemy URL to a fresh database."""
    bindir = pg_bin()
    if bindir is None:
        raise RuntimeError("PostgreSQL server not installed: apt-get install postgresql (see .ci/run)")
    root = Path(tempfile.mkdtemp(prefix="hpo-pg-"))
    data, sock = root / "data", root / "sock"
    sock.mkdir()
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        shutil.chown(sock, "postgres")
    port = _free_port()
    log = root / "server.log"
    try:
        subprocess.run(_as_owner([str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync"]),
                       check=True, capture_output=True)
        subprocess.run(
            _as_owner([str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", "60", "-o",
                       f"-h 127.0.0.1 -p {port} -k {sock} -c fsync=off -c max_connections=200", "start"]),
            check=True, capture_output=True,
        )
        deadline = time.time() + 30
        while True:
            ok = subprocess.run(_as_owner([str(bindir / "pg_isready"), "-h", "127.0.0.1", "-p", str(port)]),
                                capture_output=True).returncode == 0
            if ok or time.time() > deadline:
                break
            time.sleep(0.2)
        subprocess.run(_as_owner([str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", db]),
                       check=True, capture_output=True)
        yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}/{db}"
    finally:
        subprocess.run(_as_owner([str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"]),
                       capture_output=True)
        shutil.rmtree(root, ignore_errors=True)
