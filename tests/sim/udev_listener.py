#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Prints the udev events a libudev monitor receives, one JSON object per line.

Run under the umockdev preload (UMOCKDEV_DIR, LD_PRELOAD), which routes the monitor to the
simulated machine's events. Prints LISTENING once the monitor is live; ends on stdin EOF.
"""
import ctypes
import json
import select
import sys

udev = ctypes.CDLL('libudev.so.1')
udev.udev_new.restype = ctypes.c_void_p
udev.udev_monitor_new_from_netlink.restype = ctypes.c_void_p
udev.udev_monitor_new_from_netlink.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
udev.udev_monitor_enable_receiving.argtypes = [ctypes.c_void_p]
udev.udev_monitor_get_fd.argtypes = [ctypes.c_void_p]
udev.udev_monitor_receive_device.restype = ctypes.c_void_p
udev.udev_monitor_receive_device.argtypes = [ctypes.c_void_p]
for getter in ('udev_device_get_action', 'udev_device_get_devpath', 'udev_device_get_subsystem'):
    getattr(udev, getter).restype = ctypes.c_char_p
    getattr(udev, getter).argtypes = [ctypes.c_void_p]
udev.udev_device_get_property_value.restype = ctypes.c_char_p
udev.udev_device_get_property_value.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
udev.udev_device_get_seqnum.restype = ctypes.c_ulonglong
udev.udev_device_get_seqnum.argtypes = [ctypes.c_void_p]
udev.udev_device_unref.argtypes = [ctypes.c_void_p]


def text(value):
    return value.decode() if value else ''


def main():
    context = udev.udev_new()
    monitor = udev.udev_monitor_new_from_netlink(context, b'udev')
    udev.udev_monitor_enable_receiving(monitor)
    fd = udev.udev_monitor_get_fd(monitor)
    print('LISTENING', flush=True)
    while True:
        readable, _, _ = select.select([fd, sys.stdin], [], [])
        if sys.stdin in readable and not sys.stdin.readline():
            return
        if fd in readable:
            device = udev.udev_monitor_receive_device(monitor)
            if not device:
                continue
            event = {'action': text(udev.udev_device_get_action(device)),
                     'devpath': text(udev.udev_device_get_devpath(device)),
                     'subsystem': text(udev.udev_device_get_subsystem(device)),
                     'driver': text(udev.udev_device_get_property_value(device, b'DRIVER')),
                     'seqnum': udev.udev_device_get_seqnum(device)}
            udev.udev_device_unref(device)
            print(json.dumps(event), flush=True)


if __name__ == '__main__':
    main()
