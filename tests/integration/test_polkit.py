#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Authorization with the real polkitd and the project's policy and rules: members of the
group gpuswap may hand their VM's GPU over without a password; nobody else, and nothing
else, without an administrator."""
import os
import pty
import select
import signal
import subprocess
import sys
import termios
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'sim'))
from simharness import HERE, PYTHON, TEST_ADMIN_PASSWORD, Manager, case, main  # noqa: E402

GPU, AUDIO = '0000:03:00.0', '0000:03:00.1'
CONFIG = {'vms': {'win11': {'devices': [GPU, AUDIO]}}}
MANAGER = ('org.gpuswap1', '/org/gpuswap1', 'org.gpuswap1.Manager')


def as_user(sim, user, argv):
    return sim.run_as(user, argv) if user != 'root' else subprocess.run(argv, capture_output=True, text=True)


def busctl(sim, user, *args):
    return as_user(sim, user, ['busctl', '--address=' + sim.bus_address, '--timeout=60', *args])


def call(sim, user, method, arguments, interactive=False):
    """The Manager method with GVariant text arguments; the reply's text or ERROR name: message."""
    argv = [PYTHON, os.path.join(HERE, 'bus_call.py'), sim.bus_address] + (['--interactive'] if interactive else []) + \
        ['org.gpuswap1', '/org/gpuswap1', 'org.gpuswap1.Manager.' + method, arguments]
    return as_user(sim, user, argv)


def denied(result, error):
    assert result.returncode != 0 and result.stdout.startswith(f'ERROR {error}:'), (result.stdout, result.stderr)
    return result.stdout.strip()


@case(config=CONFIG, polkit='real')
def group_member_prepares_and_releases_without_a_password(sim):
    before = sim.snapshot()
    result = call(sim, 'gpuswap-member', 'PrepareVM', "('win11', @a{sv} {})")
    assert result.returncode == 0, result.stdout + result.stderr
    assert sim.device_state(GPU)['driver'] == 'vfio-pci'
    result = call(sim, 'gpuswap-member', 'ReleaseVM', "('win11', @a{sv} {})")
    assert result.returncode == 0, result.stdout + result.stderr
    assert sim.snapshot() == before


@case(config=CONFIG, polkit='real')
def outsider_is_refused_and_nothing_is_written(sim):
    before = sim.snapshot()
    print(denied(call(sim, 'gpuswap-outsider', 'PrepareVM', "('win11', @a{sv} {})"),
                 'org.freedesktop.DBus.Error.InteractiveAuthorizationRequired'))
    # Interaction allowed, by the message flag or the option, but no agent to ask: denied.
    print(denied(call(sim, 'gpuswap-outsider', 'PrepareVM', "('win11', @a{sv} {})", interactive=True),
                 'org.freedesktop.DBus.Error.AccessDenied'))
    print(denied(call(sim, 'gpuswap-outsider', 'PrepareVM', "('win11', {'interactive': <true>})"),
                 'org.freedesktop.DBus.Error.AccessDenied'))
    ctl = os.environ.get('GPUSWAPCTL')
    if ctl:
        env = ['env', 'DBUS_SYSTEM_BUS_ADDRESS=' + sim.bus_address]
        result = sim.run_as('gpuswap-outsider', env + [ctl, '--no-ask-password', 'prepare', 'win11'])
        assert result.returncode == 3 and 'authentication is required' in result.stderr, result
        result = sim.run_as('gpuswap-member', env + [ctl, '--no-ask-password', 'rebind', AUDIO, 'vfio-pci'])
        assert result.returncode == 3, result
    assert sim.kernel_state()['writes'] == [] and sim.snapshot() == before


def type_when_echo_is_off(terminal, password, deadline):
    """The agent prints its prompt, then turns echo off with TCSAFLUSH, which drops what was
    typed before: like a person, type once the terminal stops echoing."""
    while termios.tcgetattr(terminal)[3] & termios.ECHO:
        if time.monotonic() > deadline:
            raise AssertionError('the password prompt never turned echo off')
        time.sleep(0.01)
    os.write(terminal, password.encode() + b'\n')
    return True


def at_a_terminal(sim, user, argv, password, timeout=60):
    """Runs argv as user on a terminal of its own (its standard streams and controlling
    tty), types password at the first password prompt; (exit status, what it printed)."""
    pid, terminal = pty.fork()
    if pid == 0:
        try:
            os.execvp('setpriv', sim.as_user_argv(user, argv))
        finally:
            os._exit(127)
    output, typed = b'', False
    deadline = time.monotonic() + timeout
    while True:
        if not select.select([terminal], [], [], max(0.0, deadline - time.monotonic()))[0]:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise AssertionError('no end on the terminal: ' + output.decode(errors='replace'))
        try:
            chunk = os.read(terminal, 4096)
        except OSError:  # EIO: every process let go of the terminal
            chunk = b''
        if not chunk:
            break
        output += chunk
        if not typed and b'Password:' in output:
            typed = type_when_echo_is_off(terminal, password, deadline)
    os.close(terminal)
    status = os.waitpid(pid, 0)[1]
    return os.waitstatus_to_exitcode(status), output.decode(errors='replace')


def gpuswapctl_at_a_terminal(sim, *args, password):
    ctl = os.environ.get('GPUSWAPCTL')
    if not ctl:
        raise AssertionError('GPUSWAPCTL names no gpuswapctl to run')
    return at_a_terminal(sim, 'gpuswap-outsider', ['env', 'DBUS_SYSTEM_BUS_ADDRESS=' + sim.bus_address, ctl, *args],
                         password)


@case(config=CONFIG, polkit='real', default_bus_path=True)
def outsider_at_a_terminal_types_the_admin_password(sim):
    """gpuswapctl runs polkit's text agent on a terminal, as systemctl does: polkit asks for
    the administrator's password there, and with it the hand-over goes on."""
    status, output = gpuswapctl_at_a_terminal(sim, 'prepare', 'win11', password=TEST_ADMIN_PASSWORD)
    print(output, flush=True)
    assert status == 0, output
    assert 'org.gpuswap1.manage-vm' in output and 'gpuswap-admin' in output, output
    assert sim.device_state(GPU)['driver'] == 'vfio-pci' and sim.device_state(AUDIO)['driver'] == 'vfio-pci'


@case(config=CONFIG, polkit='real', default_bus_path=True)
def outsider_at_a_terminal_reloads_with_the_admin_password(sim):
    """Reload takes no options: gpuswapctl sets the message's allow-interactive-authorization
    flag, so polkit asks on the terminal there too."""
    status, output = gpuswapctl_at_a_terminal(sim, 'reload', password=TEST_ADMIN_PASSWORD)
    print(output, flush=True)
    assert status == 0, output
    assert 'org.gpuswap1.reload' in output and 'gpuswap-admin' in output, output
    status, output = gpuswapctl_at_a_terminal(sim, 'reload', '--no-ask-password', password=TEST_ADMIN_PASSWORD)
    print(output, flush=True)
    assert status == 3 and 'gpuswap-admin' not in output, output


@case(config=CONFIG, polkit='real', default_bus_path=True)
def outsider_at_a_terminal_with_a_wrong_password_is_refused(sim):
    before = sim.snapshot()
    status, output = gpuswapctl_at_a_terminal(sim, 'prepare', 'win11', password='not-the-password')
    print(output, flush=True)
    assert status == 3, output
    assert sim.kernel_state()['writes'] == [] and sim.snapshot() == before


@case(config=CONFIG, polkit='real')
def root_is_allowed_everything(sim):
    assert call(sim, 'root', 'RebindDevice', f"('{AUDIO}', 'vfio-pci', @a{{sv}} {{}})").returncode == 0
    assert call(sim, 'root', 'RebindDevice', f"('{AUDIO}', '', @a{{sv}} {{}})").returncode == 0
    assert call(sim, 'root', 'Reload', '()').returncode == 0
    assert sim.device_state(AUDIO)['driver'] == 'snd_hda_intel'


@case(config={'vms': {'win11': {}}}, polkit='real')
def group_member_may_not_rebind_resize_reload_or_name_devices(sim):
    before = sim.snapshot()
    member = 'gpuswap-member'
    required = 'org.freedesktop.DBus.Error.InteractiveAuthorizationRequired'
    denied(call(sim, member, 'RebindDevice', f"('{AUDIO}', 'vfio-pci', @a{{sv}} {{}})"), required)
    denied(call(sim, member, 'ResizeBar', f"('{GPU}', uint32 0, uint64 {8 << 30}, @a{{sv}} {{}})"), required)
    denied(call(sim, member, 'Reload', '()'), required)
    xml = ("<domain><devices><hostdev mode='subsystem' type='pci'><source>"
           "<address domain='0x0000' bus='0x03' slot='0x00' function='0x0'/></source></hostdev></devices></domain>")
    message = denied(call(sim, member, 'PrepareVM', f"('win11', {{'domain-xml': <\"{xml}\">}})"),
                     'org.freedesktop.DBus.Error.AccessDenied')
    assert 'root' in message, message
    assert sim.kernel_state()['writes'] == [] and sim.snapshot() == before


@case(config=CONFIG, polkit='real')
def reads_and_diagnose_need_nothing(sim):
    for user in ('gpuswap-outsider', 'gpuswap-member'):
        result = call(sim, user, 'Diagnose', "('win11',)")
        assert result.returncode == 0, result.stdout + result.stderr
        result = busctl(sim, user, 'get-property', *MANAGER, 'Profiles')
        assert result.returncode == 0 and 'win11' in result.stdout, result.stderr
        result = busctl(sim, user, 'get-property', 'org.gpuswap1', '/org/gpuswap1/device/pci_0000_03_00_0',
                        'org.gpuswap1.Device', 'Driver')
        assert result.stdout.strip() == 's "amdgpu"', result


@case(config=CONFIG, polkit='real')
def only_root_may_own_the_name(sim):
    result = busctl(sim, 'gpuswap-member', 'call', 'org.freedesktop.DBus', '/org/freedesktop/DBus',
                    'org.freedesktop.DBus', 'RequestName', 'su', 'org.gpuswap1', '0')
    assert result.returncode != 0 and 'Access denied' in result.stderr, result
    assert Manager(sim.bus).get('Version')


if __name__ == '__main__':
    main()
