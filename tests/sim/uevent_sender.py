# SPDX-License-Identifier: GPL-2.0-or-later
"""Delivers udev events to the libudev monitors of processes under the umockdev preload.

The preload turns every NETLINK_KOBJECT_UEVENT socket of a monitored process into an
AF_UNIX datagram socket bound at $UMOCKDEV_DIR/event<fd>. A message there must look like
what udevd sends to libudev monitors: the "libudev" header (magic 0xfeedcafe, the
MurmurHash2 of subsystem and devtype for the socket filters) followed by KEY=value
properties, each NUL-terminated. This sender needs neither libudev nor the preload, so
the fake kernel can run as a plain process.
"""
import errno
import glob
import os
import socket
import struct
import threading

_UDEV_MONITOR_MAGIC = 0xfeedcafe
_HEADER = struct.Struct('=8sIIIIIIII')


def _murmur_hash2(data: bytes, seed: int = 0) -> int:
    m, r = 0x5bd1e995, 24
    h = (seed ^ len(data)) & 0xffffffff
    end = len(data) - len(data) % 4
    for i in range(0, end, 4):
        k = int.from_bytes(data[i:i + 4], 'little')
        k = (k * m) & 0xffffffff
        k ^= k >> r
        k = (k * m) & 0xffffffff
        h = ((h * m) & 0xffffffff) ^ k
    tail = data[end:]
    if len(tail) == 3:
        h ^= tail[2] << 16
    if len(tail) >= 2:
        h ^= tail[1] << 8
    if len(tail) >= 1:
        h ^= tail[0]
        h = (h * m) & 0xffffffff
    h ^= h >> 13
    h = (h * m) & 0xffffffff
    h ^= h >> 15
    return h


class UeventSender:
    """Numbers events like the kernel (SEQNUM) and sends each to every monitor."""

    def __init__(self, testbed_root):
        self.root = testbed_root
        self.seqnum = 1000
        self.lock = threading.Lock()
        self.sent = []  # (seqnum, action, devpath), for the harness's checks

    def send(self, action, devpath, subsystem, properties, devtype=None):
        with self.lock:
            self.seqnum += 1
            fields = [f'ACTION={action}', f'DEVPATH={devpath}', f'SUBSYSTEM={subsystem}',
                      f'SEQNUM={self.seqnum}']
            if devtype:
                fields.append(f'DEVTYPE={devtype}')
            fields += [f'{key}={value}' for key, value in properties.items()]
            payload = b''.join(field.encode() + b'\0' for field in fields)
            header = _HEADER.pack(b'libudev\0', socket.htonl(_UDEV_MONITOR_MAGIC), _HEADER.size,
                                  _HEADER.size, len(payload),
                                  socket.htonl(_murmur_hash2(subsystem.encode())),
                                  socket.htonl(_murmur_hash2(devtype.encode())) if devtype else 0, 0, 0)
            for path in glob.glob(os.path.join(self.root, 'event[0-9]*')):
                with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                    try:
                        sock.sendto(header + payload, path)
                    except OSError as e:
                        if e.errno != errno.ECONNREFUSED:  # monitor gone
                            raise
                        os.unlink(path)
            self.sent.append((self.seqnum, action, devpath))
