#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Hostile callers and hostile text: no local user can crash, wedge or steer gpuswapd.
Process names any user can set (invalid UTF-8, terminal escapes), forged systemd signals,
floods of calls from one uid and from many, callers that leave while polkit decides,
Diagnose floods, and a dry run that fails while another operation runs."""
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'sim'))
from simharness import CALLER_USERS, PYTHON, Bus, Manager, case, main, variants  # noqa: E402

GPU, AUDIO, USB = '0000:03:00.0', '0000:03:00.1', '0000:00:14.0'
CONFIG = {'timeouts_ms': {'unit': 20000, 'bind': 10000, 'holders': 1000},
          'vms': {'win11': {'devices': [GPU, AUDIO]}, 'usb': {'devices': [USB]}}}
POLKIT_MOCK = ('org.freedesktop.PolicyKit1', '/org/freedesktop/PolicyKit1/Authority', 'org.freedesktop.DBus.Mock')
SYSTEMD = ('org.freedesktop.systemd1', '/org/freedesktop/systemd1', 'org.freedesktop.systemd1.Manager')
SYSTEMD_MOCK = ('org.freedesktop.systemd1', '/org/freedesktop/systemd1', 'org.freedesktop.DBus.Mock')
HOSTILE_NAME = b'x\xff\x1b[31m'          # invalid UTF-8 and a terminal escape
HOSTILE_ESCAPED = 'x\\xff\\x1b[31m'       # how gpuswapd must show it
UIDS = sorted(CALLER_USERS.values())
SLOW_DM = [{'name': 'gdm.service', 'aliases': ['display-manager.service'], 'active': True, 'stop_ms': 8000}]

# A process that names itself (prctl PR_SET_NAME, as any user may), opens a node and
# keeps it; with "react" it closes the node when a line arrives (a disconnect).
HOLDER = r'''
import ctypes, os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_NOCTTY)
ctypes.CDLL(None).prctl(15, os.fsencode(sys.argv[2]), 0, 0, 0)
print("holding", flush=True)
if sys.argv[3] == "react":
    os.read(fd, 100)
    os._exit(0)
os.read(0, 1)
'''


def hostile_holder(sim, devname, react=False):
    node = os.path.realpath(os.path.join(sim.testbed, 'dev', devname))
    holder = subprocess.Popen([PYTHON, '-c', HOLDER, node, os.fsdecode(HOSTILE_NAME), 'react' if react else 'stay'],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    sim.processes.append(holder)
    assert holder.stdout.readline().strip() == b'holding'
    return holder


def call_as(sim, uid, method, signature, args):
    """A caller with its own connection and uid (setpriv), as gdbus; returns the process."""
    argv = ['setpriv', f'--reuid={uid}', f'--regid={uid}', '--clear-groups',
            'gdbus', 'call', '--system', '--timeout', '120', '--dest', 'org.gpuswap1', '--object-path', '/org/gpuswap1',
            '--method', f'org.gpuswap1.Manager.{method}', *args]
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env=dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=sim.bus_address))
    sim.processes.append(process)
    return process


def busy_answers(processes, expected, timeout=20):
    """Waits until `expected` of the callers have ended with Busy; returns their count."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ended = [p for p in processes if p.poll() is not None]
        busy = [p for p in ended if 'org.gpuswap1.Error.Busy' in p.stdout.read()]
        for process in busy:
            processes.remove(process)
        expected -= len(busy)
        if expected <= 0:
            return expected
        time.sleep(0.05)
    return expected


def wait_for_operation(sim, manager, name):
    assert sim.bus.wait_until(lambda: manager.get('Operation') == name, timeout=20), manager.get('Operation')


@case(config=CONFIG)
def process_names_with_invalid_utf8_and_escapes_are_shown_escaped(sim):
    manager = Manager(sim.bus)
    finished = sim.bus.subscribe('org.gpuswap1', 'org.gpuswap1.Manager', 'OperationFinished')
    holder = hostile_holder(sim, 'dri/card1')
    message = manager.expect_error('org.gpuswap1.Error.DeviceBusy', 'PrepareVM', 'sa{sv}', ('win11', {}))
    assert f'{holder.pid} ({HOSTILE_ESCAPED}) holds /dev/dri/card1' in message, message
    assert manager.get('Version'), 'gpuswapd is alive'
    # The broadcast does not name other users' processes; the caller's reply does.
    assert sim.bus.wait_until(lambda: finished)
    broadcast = finished[-1][2][3]
    assert str(holder.pid) not in broadcast and 'still in use' in broadcast, broadcast
    # gpuswapctl shows it escaped too: no terminal escape reaches the terminal.
    ctl = subprocess.run([os.environ['GPUSWAPCTL'], 'prepare', 'win11'], capture_output=True,
                         env=dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=sim.bus_address))
    assert ctl.returncode == 1 and HOSTILE_ESCAPED.encode() in ctl.stderr and b'\x1b' not in ctl.stderr + ctl.stdout, ctl
    # The RebindDevice path answers too, and the queue moves on.
    message = manager.expect_error('org.gpuswap1.Error.DeviceBusy', 'RebindDevice', 'ssa{sv}', (GPU, 'vfio-pci', {}))
    assert HOSTILE_ESCAPED in message, message
    manager.call('RebindDevice', 'ssa{sv}', (USB, 'vfio-pci', {}))
    assert sim.device_state(USB)['driver'] == 'vfio-pci'
    holder.kill()
    holder.wait()
    # A sound holder with the same name is noted, escaped, and lets go on the disconnect.
    sound = hostile_holder(sim, sim.sound_control_node(AUDIO), react=True)
    steps = manager.prepare('win11')
    assert any(f'{sound.pid} ({HOSTILE_ESCAPED}) holds' in step for step in steps), steps
    assert sim.device_state(AUDIO)['driver'] == 'vfio-pci'
    result = subprocess.run([os.environ['GPUSWAPCTL'], '--json', 'status'], capture_output=True, text=True,
                            env=dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=sim.bus_address))
    assert result.returncode == 0 and '\x1b' not in result.stdout, result


@case(config=CONFIG, units=[{'name': 'gdm.service', 'aliases': ['display-manager.service'], 'active': True,
                             'stop_ms': 1500, 'start_ms': 100}])
def forged_job_removed_signals_are_ignored(sim):
    manager = Manager(sim.bus)
    daemon = sim.bus.call('org.freedesktop.DBus', '/org/freedesktop/DBus', 'org.freedesktop.DBus', 'GetNameOwner', 's',
                          ('org.gpuswap1',))[0]
    from gi.repository import GLib

    def forge(job_id, result):
        sim.bus.connection.emit_signal(daemon, '/org/freedesktop/systemd1', 'org.freedesktop.systemd1.Manager',
                                       'JobRemoved', GLib.Variant('(uoss)', (job_id, f'/org/freedesktop/systemd1/job/{job_id}',
                                                                            'gdm.service', result)))
        sim.bus.call('org.freedesktop.DBus', '/org/freedesktop/DBus', 'org.freedesktop.DBus', 'GetId')

    # Planted in advance for the job the display manager's stop will get: job 1.
    forge(1, 'failed')
    new_jobs = sim.bus.subscribe('org.freedesktop.systemd1', 'org.freedesktop.systemd1.Manager', 'JobNew')
    pending = manager.call_async('PrepareVM', 'sa{sv}', ('win11', {}))
    assert sim.bus.wait_until(lambda: new_jobs, timeout=10)
    # And while the real job runs: "done" now, although the unit is still deactivating.
    forge(new_jobs[0][2][0], 'done')
    assert sim.bus.wait_until(lambda: pending.done, timeout=30)
    assert pending.error is None, pending.error
    assert sim.device_state(GPU)['driver'] == 'vfio-pci'
    assert 'ignored a JobRemoved signal' in sim.log('gpuswapd.log')


@case(config=CONFIG, units=SLOW_DM)
def a_flood_from_one_uid_is_bounded_and_the_hooks_call_is_served(sim):
    manager = Manager(sim.bus)
    sim.bus.call(*POLKIT_MOCK, 'SetAllowed', 'as', (['org.gpuswap1.manage-vm', 'org.gpuswap1.rebind-device'],))
    running = manager.call_async('PrepareVM', 'sa{sv}', ('win11', {}))
    wait_for_operation(sim, manager, 'prepare:win11')
    callers = [call_as(sim, UIDS[0], 'RebindDevice', 'ssa{sv}', [USB, 'vfio-pci', '{}']) for _ in range(6)]
    assert busy_answers(callers, 2) == 0, 'the 5th and 6th call of one uid are Busy'
    time.sleep(0.5)
    assert all(p.poll() is None for p in callers), 'four wait their turn'
    hook = manager.call_async('RebindDevice', 'ssa{sv}', (USB, '', variants({})))
    assert sim.bus.wait_until(lambda: running.done and hook.done, timeout=60)
    assert running.error is None and hook.error is None, (running.error, hook.error)
    for process in callers:
        assert process.wait(30) == 0, process.stdout.read()
    assert sim.device_state(USB)['driver'] == 'xhci_hcd', 'the hook\'s call came after the four, in order'


@case(config=CONFIG, units=SLOW_DM)
def a_flood_from_many_uids_is_bounded_in_all(sim):
    manager = Manager(sim.bus)
    sim.bus.call(*POLKIT_MOCK, 'SetAllowed', 'as', (['org.gpuswap1.manage-vm'],))
    running = manager.call_async('PrepareVM', 'sa{sv}', ('win11', {}))
    wait_for_operation(sim, manager, 'prepare:win11')
    callers = [call_as(sim, UIDS[n % 5], 'PrepareVM', 'sa{sv}', ['usb', '{}']) for n in range(20)]
    assert busy_answers(callers, 4) == 0, 'beyond 16 waiting calls: Busy'
    time.sleep(0.5)
    assert sum(p.poll() is None for p in callers) == 16
    hook = manager.call_async('ReleaseVM', 'sa{sv}', ('usb', variants({})))
    assert sim.bus.wait_until(lambda: running.done and hook.done, timeout=90)
    assert running.error is None and hook.error is None, (running.error, hook.error)
    assert manager.get('PreparedVMs') == ['win11']


@case(config=CONFIG)
def a_caller_that_leaves_while_polkit_decides_frees_its_place(sim):
    manager = Manager(sim.bus)
    sim.bus.call(*POLKIT_MOCK, 'SimulateHang', 'b', (True,))
    callers = [call_as(sim, UIDS[0], 'PrepareVM', 'sa{sv}', ['win11', '{}']) for _ in range(4)]
    # All four hold their place (polkit asked for each) before the fifth comes.
    assert sim.bus.wait_until(lambda: sim.log('gpuswapd.log').count('asking polkit whether') == 4, timeout=30)
    assert sim.bus.call(*POLKIT_MOCK, 'HaveHangingCalls')[0]
    fifth = call_as(sim, UIDS[0], 'PrepareVM', 'sa{sv}', ['win11', '{}'])
    assert fifth.wait(20) != 0 and 'org.gpuswap1.Error.Busy' in fifth.stdout.read()
    for process in callers:
        process.kill()
        process.wait()
    assert sim.bus.wait_until(lambda: sim.log('gpuswapd.log').count('which left the bus') == 4, timeout=10), \
        sim.log('gpuswapd.log')[-2000:]
    again = [call_as(sim, UIDS[0], 'PrepareVM', 'sa{sv}', ['win11', '{}']) for _ in range(4)]
    time.sleep(1.0)
    assert all(p.poll() is None for p in again), 'the places were freed: four more wait at polkit'
    for process in again:
        process.kill()
    sim.bus.call(*POLKIT_MOCK, 'ReleaseHangingCalls')
    assert manager.get('PreparedVMs') == [] and sim.kernel_state()['writes'] == []


@case(config=CONFIG)
def a_diagnose_flood_reads_only_tracked_devices_and_others_are_answered(sim):
    manager = Manager(sim.bus)
    untracked = '/devices/0000:04:00.0/driver_override'
    before = sim.kernel_state()['reads']
    # Three connections: the bus allows each at most 128 calls waiting for an answer.
    floods = [Manager(Bus(sim.bus_address)) for _ in range(3)]
    pending = [flood.call_async('Diagnose', 's', ('win11',)) for flood in floods for _ in range(100)]
    latencies = []
    while not all(p.done for p in pending):
        started = time.monotonic()
        manager.device(GPU, 'Driver')
        latencies.append((time.monotonic() - started) * 1000)
        sim.bus.wait_until(lambda: all(p.done for p in pending), timeout=0.01)
    assert all(p.error is None for p in pending), [p.error for p in pending if p.error][:3]
    after = sim.kernel_state()['reads']
    assert after.get(untracked, 0) == before.get(untracked, 0), 'an untracked device was read'
    tracked = f'/devices/{GPU}/driver_override'
    gpu_reads = after.get(tracked, 0) - before.get(tracked, 0)
    latencies.sort()
    print(f'300 Diagnose calls: {gpu_reads} reads of the GPU\'s driver_override; property Get meanwhile: '
          f'{len(latencies)} calls, median {latencies[len(latencies) // 2]:.2f} ms, max {latencies[-1]:.2f} ms', flush=True)
    assert gpu_reads <= 10, gpu_reads
    assert latencies[-1] < 2000, latencies[-1]


@case(config=CONFIG, units=SLOW_DM)
def a_failing_dry_run_leaves_the_running_operation_alone(sim):
    manager = Manager(sim.bus)
    running = manager.call_async('PrepareVM', 'sa{sv}', ('win11', {}))
    wait_for_operation(sim, manager, 'prepare:win11')
    # The dry run asks systemd about the display manager; meanwhile its device goes away.
    sim.bus.call(*SYSTEMD_MOCK, 'SetListDelay', 'i', (1500,))
    dry = manager.call_async('PrepareVM', 'sa{sv}', ('usb', variants({'dry_run': True})))
    time.sleep(0.3)
    sim.kernel(op='remove-device', device=USB)
    assert sim.bus.wait_until(lambda: dry.done, timeout=20)
    assert dry.error is not None and dry.error.name == 'org.gpuswap1.Error.NoSuchDevice', dry.error
    assert manager.get('Operation') == 'prepare:win11', 'the running operation is still the running one'
    sim.bus.call(*SYSTEMD_MOCK, 'SetListDelay', 'i', (0,))
    assert sim.bus.wait_until(lambda: running.done, timeout=60)
    assert running.error is None, running.error
    assert manager.get('PreparedVMs') == ['win11']
    sim.kernel(op='rescan')


if __name__ == '__main__':
    main()
