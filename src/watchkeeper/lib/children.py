"""Helper processes of the server (event processors, the ingest writer): fresh interpreters, each
talking to the server over one end of a Unix socket pair."""

from __future__ import annotations

import socket
import subprocess
import sys


def start_child(module: str) -> tuple[subprocess.Popen[bytes], socket.socket]:
    """Start ``python -P -m <module> <fd>`` with one end of a socket pair; returns it and our end.

    A new interpreter rather than a fork (the server runs threads by then) or multiprocessing's spawn
    (which re-imports the server's main module and starts a resource-tracker process). -P: the working
    directory is not put on the child's module path. Our copy of the child's end is closed, so that
    the child's death reads as end-of-file on ours, and ours closing tells the child to exit.
    """
    ours, theirs = socket.socketpair()
    command = [sys.executable, "-P", "-m", module, str(theirs.fileno())]
    try:
        process = subprocess.Popen(command, pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL)
    except BaseException:
        ours.close()
        raise
    finally:
        theirs.close()
    return process, ours


def reap(process: subprocess.Popen[bytes], timeout: float = 5.0) -> None:
    """Wait for a child told to exit (its socket closed); kill it if it does not."""
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout)
