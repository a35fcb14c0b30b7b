#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""The seamless "keep" hand-over: the display manager and the session stay. Compositors
hold every GPU's DRM nodes and let go of one only on udev's remove event, which comes after
the unbind: so "keep" does not wait for DRM holders. It is refused, before anything is
written, for a GPU the desktop cannot lose: the boot display, one driving a screen (an
enabled connector), or one on NVIDIA's driver (its unbind never returns while open)."""
import json
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'sim'))
from simharness import Manager, case, main  # noqa: E402

GPU, AUDIO = '0000:03:00.0', '0000:03:00.1'
TIMEOUTS = {'unit': 2000, 'bind': 5000, 'holders': 1000}
KEEP = {'timeouts_ms': TIMEOUTS, 'vms': {'win11': {'devices': [GPU, AUDIO], 'display_manager': 'keep'}}}


@case(config=KEEP)
def keep_goes_on_while_the_compositor_holds_the_card(sim):
    manager = Manager(sim.bus)
    before = sim.snapshot()
    compositor = sim.hold('dri/card1')   # the session's compositor has the RX 6800 open
    steps = manager.prepare('win11')
    assert not any('display-manager' in step for step in steps), steps
    assert steps[0].startswith('note the processes that hold /dev/dri/card1') and \
        f'ignored {compositor.pid} (sleep) holds /dev/dri/card1' in steps[0], steps
    assert sim.device_state(GPU)['driver'] == 'vfio-pci' and sim.unit_state() == 'active'
    assert compositor.poll() is None
    compositor.kill()
    manager.release('win11')
    assert sim.snapshot() == before


@case(config=KEEP)
def keep_refuses_a_gpu_that_drives_a_screen(sim):
    before = sim.snapshot()
    with open(sim.sysfs(f'bus/pci/devices/{GPU}/drm/card1/card1-DP-1/enabled'), 'w') as f:
        f.write('enabled\n')   # the compositor lit up a monitor on the RX 6800
    message = Manager(sim.bus).expect_error('org.gpuswap1.Error.DeviceBusy', 'PrepareVM', 'sa{sv}', ('win11', {}))
    assert 'drives a screen (card1-DP-1 enabled)' in message and '"restart"' in message, message
    assert sim.kernel_state()['writes'] == [] and sim.snapshot() == before and sim.unit_state() == 'active'


@case(machine='b650-rx7900-single', config=KEEP)
def keep_refuses_the_boot_display(sim):
    message = Manager(sim.bus).expect_error('org.gpuswap1.Error.DeviceBusy', 'PrepareVM', 'sa{sv}', ('win11', {}))
    assert f'{GPU} is the boot display' in message, message
    assert sim.kernel_state()['writes'] == []


@case(machine='z690-rtx2080', config={'timeouts_ms': TIMEOUTS, 'vms': {'win11': {
    'devices': ['0000:01:00.0', '0000:01:00.1', '0000:01:00.2', '0000:01:00.3'], 'display_manager': 'keep'}}})
def keep_refuses_a_gpu_on_nvidias_driver(sim):
    message = Manager(sim.bus).expect_error('org.gpuswap1.Error.DeviceBusy', 'PrepareVM', 'sa{sv}', ('win11', {}))
    assert "0000:01:00.0 is on NVIDIA's driver" in message, message
    assert sim.kernel_state()['writes'] == []


@case(config=KEEP)
def diagnose_names_the_running_compositors_case(sim):
    """For a "keep" profile Diagnose tells what the running compositor does when the GPU
    goes (found by its process name)."""
    directory = os.path.join(sim.work, 'bin')
    os.makedirs(directory)
    shutil.copy('/bin/sleep', os.path.join(directory, 'sway'))
    compositor = subprocess.Popen([os.path.join(directory, 'sway'), '600'])
    sim.processes.append(compositor)
    env = {'PATH': os.environ['PATH'], 'DBUS_SYSTEM_BUS_ADDRESS': sim.bus_address}
    result = subprocess.run([os.environ['GPUSWAPCTL'], 'diagnose', 'win11', '--json'], env=env, capture_output=True,
                            text=True, timeout=60)
    findings = json.loads(result.stdout)
    keep = [f for f in findings if f['code'] == 'keep-compositor']
    assert len(keep) == 1 and 'sway runs: sway (wlroots 0.13 and later' in keep[0]['message'], findings


if __name__ == '__main__':
    main()
