#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""A D-Bus call as a test user would make it, printing the reply or the error's name.

    bus_call.py ADDRESS [--interactive] DESTINATION PATH INTERFACE.METHOD [GVARIANT_TUPLE]

Prints the reply's GVariant text, or "ERROR <name>: <message>" and exits 1.
"""
import sys

from gi.repository import Gio, GLib


def main():
    args = sys.argv[1:]
    interactive = '--interactive' in args
    args = [a for a in args if a != '--interactive']
    address, destination, path, member = args[:4]
    parameters = GLib.Variant.parse(None, args[4], None, None) if len(args) > 4 else None
    interface, method = member.rsplit('.', 1)
    connection = Gio.DBusConnection.new_for_address_sync(
        address, Gio.DBusConnectionFlags.AUTHENTICATION_CLIENT | Gio.DBusConnectionFlags.MESSAGE_BUS_CONNECTION,
        None, None)
    flags = Gio.DBusCallFlags.ALLOW_INTERACTIVE_AUTHORIZATION if interactive else Gio.DBusCallFlags.NONE
    try:
        reply = connection.call_sync(destination, path, interface, method, parameters, None, flags, 60000, None)
    except GLib.Error as e:
        name = Gio.DBusError.get_remote_error(e)
        Gio.DBusError.strip_remote_error(e)
        print(f'ERROR {name}: {e.message}')
        sys.exit(1)
    print(reply.print_(True))


if __name__ == '__main__':
    main()
