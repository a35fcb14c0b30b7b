#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""An RTX card on NVIDIA's proprietary driver (machine z690-rtx2080): /dev/nvidiaN is
always waited for (the driver's remove never returns while it is open), the release pins
nvidia although nouveau would match first, and a Turing card's four functions must all go."""
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'sim'))
from simharness import Manager, case, main  # noqa: E402

MACHINE = 'z690-rtx2080'
VGA, AUDIO, USB, UCSI = '0000:01:00.0', '0000:01:00.1', '0000:01:00.2', '0000:01:00.3'
ALL = [VGA, AUDIO, USB, UCSI]
TIMEOUTS = {'unit': 2000, 'bind': 5000, 'holders': 1000}


def profile(devices=ALL, **settings):
    return {'timeouts_ms': TIMEOUTS, 'vms': {'win11': dict(devices=devices, **settings)}}


@case(machine=MACHINE, config=profile())
def all_four_functions_go_and_nvidia_comes_back_pinned(sim):
    manager = Manager(sim.bus)
    before = sim.snapshot()
    assert os.path.exists(os.path.join(sim.testbed, 'dev', 'nvidia0'))
    steps = manager.prepare('win11')
    assert any('/dev/nvidia0' in step for step in steps), steps
    assert [sim.device_state(a)['driver'] for a in ALL] == ['vfio-pci'] * 4
    assert not os.path.exists('/proc/driver/nvidia/gpus/' + VGA), 'the driver let go of the GPU'
    steps = manager.release('win11')
    assert f'set driver_override of {VGA} to nvidia' in steps, steps
    # An unpinned probe would have bound nouveau, registered first.
    assert sim.snapshot() == before, (sim.snapshot(), before)
    with open(f'/proc/driver/nvidia/gpus/{VGA}/information') as f:
        assert 'Device Minor: \t 0' in f.read()


@case(machine=MACHINE, config=profile(holders='ignore'))
def an_open_nvidia_node_is_waited_for_even_with_holders_ignore(sim):
    manager = Manager(sim.bus)
    before = sim.snapshot()
    persistenced = sim.hold('nvidia0')
    message = manager.expect_error('org.gpuswap1.Error.DeviceBusy', 'PrepareVM', 'sa{sv}', ('win11', {}))
    assert f'{persistenced.pid} (sleep) holds /dev/nvidia0' in message, message
    assert sim.snapshot() == before
    assert not any(w['path'] == '/drivers/nvidia/unbind' for w in sim.kernel_state()['writes']), \
        'never unbind nvidia while its node is open: that write would never return'
    persistenced.kill()
    persistenced.wait()
    manager.prepare('win11')
    assert sim.device_state(VGA)['driver'] == 'vfio-pci'


@case(machine=MACHINE, config=dict(profile(), timeouts_ms=dict(TIMEOUTS, holders=20000)))
def prepare_waits_for_the_nvidia_node_then_goes_on(sim):
    manager = Manager(sim.bus)
    persistenced = sim.hold('nvidia0')
    pending = manager.call_async('PrepareVM', 'sa{sv}', ('win11', {}))
    progress_line = lambda: manager.get('Operation') == 'prepare:win11'  # noqa: E731
    assert sim.bus.wait_until(progress_line)
    assert not sim.bus.wait_until(lambda: pending.done, timeout=1.0), 'it waits while /dev/nvidia0 is open'
    assert not any(w['path'] == '/drivers/nvidia/unbind' for w in sim.kernel_state()['writes'])
    persistenced.kill()
    persistenced.wait()
    assert sim.bus.wait_until(lambda: pending.done, timeout=30)
    assert pending.error is None, pending.error
    assert sim.device_state(VGA)['driver'] == 'vfio-pci'


@case(machine=MACHINE, config=profile(devices=[VGA, AUDIO]))
def a_turing_card_without_its_usb_functions_is_not_viable(sim):
    manager = Manager(sim.bus)
    before = sim.snapshot()
    message = manager.expect_error('org.gpuswap1.Error.NotViable', 'PrepareVM', 'sa{sv}', ('win11', {}))
    assert f'{USB} on xhci_hcd' in message and f'{UCSI} on nvidia-gpu' in message, message
    fix = '"devices": ["0000:01:00.0", "0000:01:00.1", "0000:01:00.2", "0000:01:00.3"]'
    assert fix in message, message
    assert sim.snapshot() == before and sim.kernel_state()['writes'] == []
    # gpuswapctl diagnose names both missing functions and prints the same line.
    diagnose = subprocess.run([os.environ['GPUSWAPCTL'], 'diagnose', 'win11'], capture_output=True, text=True,
                              env=dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=sim.bus_address))
    lines = [line for line in diagnose.stdout.splitlines() if 'group-not-viable' in line]
    assert diagnose.returncode == 1 and len(lines) == 2, diagnose
    assert all(fix in line for line in lines) and USB in lines[0] + lines[1] and UCSI in lines[0] + lines[1], lines


PERSISTENCED = [{'name': 'gdm.service', 'aliases': ['display-manager.service'], 'active': True},
                {'name': 'nvidia-persistenced.service', 'active': True}]
MOCK = ('org.freedesktop.systemd1', '/org/freedesktop/systemd1', 'org.freedesktop.DBus.Mock')


@case(machine=MACHINE, config=profile(stop_units=['nvidia-persistenced.service']), units=PERSISTENCED)
def nvidia_persistenced_is_stopped_first_and_started_after_release(sim):
    """nvidia-persistenced keeps /dev/nvidiaN open: as a stop_units entry it is stopped
    before everything else, stays stopped while the VM runs, and starts after the release."""
    manager = Manager(sim.bus)
    before = sim.snapshot()
    steps = manager.prepare('win11')
    assert steps[:2] == ['stop nvidia-persistenced.service', 'stop display-manager.service'], steps
    assert 'start nvidia-persistenced.service' not in steps and steps[-1] == 'start display-manager.service', steps
    assert sim.unit_state('nvidia-persistenced.service') == 'inactive' and sim.unit_state() == 'active'
    steps = manager.release('win11')
    assert steps[-2:] == ['start nvidia-persistenced.service', 'start display-manager.service'], steps
    assert sim.unit_state('nvidia-persistenced.service') == 'active' and sim.snapshot() == before


@case(machine=MACHINE, config=profile(stop_units=['nvidia-persistenced.service']), units=PERSISTENCED)
def a_failure_after_stopping_persistenced_starts_it_again(sim):
    manager = Manager(sim.bus)
    before = sim.snapshot()
    sim.bus.call(*MOCK, 'SetJobBehaviour', 'sssi', ('display-manager.service', 'stop', 'failed', 0))
    message = manager.expect_error('org.gpuswap1.Error.DisplayManagerFailed', 'PrepareVM', 'sa{sv}', ('win11', {}))
    assert 'rolled back' in message, message
    assert sim.unit_state('nvidia-persistenced.service') == 'active' and sim.snapshot() == before


@case(machine=MACHINE, config=profile(stop_units=['nvidia-persistenced.service']), units=PERSISTENCED)
def a_restart_keeps_persistenced_to_be_started_at_release(sim):
    manager = Manager(sim.bus)
    manager.prepare('win11')
    sim.stop_daemon()
    sim.start_daemon()
    assert Manager(sim.bus).release('win11')[-2] == 'start nvidia-persistenced.service'
    assert sim.unit_state('nvidia-persistenced.service') == 'active'


if __name__ == '__main__':
    main()
