"""Notice a host opening a pty's slave side without polling it: inotify IN_OPEN on /dev/pts/N (Linux).

A pty master whose slave nobody holds reads EIO and select() reports it readable at once, so the server
cannot wait on the master until a host has the port open. inotify on the slave's device node tells it
when someone opens it. Where inotify is not available, :func:`open_watch` returns None and the caller
falls back to probing the master every tick.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os

log = logging.getLogger(__name__)

IN_OPEN = 0x0000_0020
IN_NONBLOCK = os.O_NONBLOCK
IN_CLOEXEC = os.O_CLOEXEC


def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name, use_errno=True)
        libc.inotify_init1.argtypes = [ctypes.c_int]
        libc.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
    except (OSError, AttributeError):
        return None
    return libc


_LIBC = _libc()


class OpenWatch:
    """An fd that becomes readable when the watched file is opened; :meth:`drain` consumes the events."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def drain(self) -> None:
        try:
            while os.read(self.fd, 4096):
                pass
        except BlockingIOError:
            pass

    def close(self) -> None:
        os.close(self.fd)


def open_watch(path: str) -> OpenWatch | None:
    """A watch for opens of `path`, or None (no inotify here, or it refused the path)."""
    if _LIBC is None:
        return None
    fd = _LIBC.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
    if fd < 0:
        log.debug("inotify_init1 failed: errno %d", ctypes.get_errno())
        return None
    if _LIBC.inotify_add_watch(fd, os.fsencode(path), IN_OPEN) < 0:
        log.debug("inotify_add_watch %s failed: errno %d", path, ctypes.get_errno())
        os.close(fd)
        return None
    return OpenWatch(fd)
