#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""PrepareVM and ReleaseVM on the simulated machines: the hand-over as a user sees it."""
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'sim'))
from simharness import BusError, Manager, case, main  # noqa: E402

GIB, MIB = 1 << 30, 1 << 20
B_GPU, B_AUDIO = '0000:03:00.0', '0000:03:00.1'
A_GPU, A_AUDIO = '0000:0b:00.0', '0000:0b:00.1'
Z790 = {'vms': {'win11': {'devices': [B_GPU, B_AUDIO], 'bars': {B_GPU: {'0': '8G', '2': '8M'}}}}}
B550 = {'vms': {'win10': {'devices': [A_GPU, A_AUDIO]}}}


def prepare(sim, vm, **options):
    return Manager(sim.bus).prepare(vm, **options)


def release(sim, vm, **options):
    return Manager(sim.bus).release(vm, **options)


@case(config=Z790)
def prepare_and_release_z790_with_resizable_bar(sim):
    before = sim.snapshot()
    steps = prepare(sim, 'win11')
    gpu, audio = sim.device_state(B_GPU), sim.device_state(B_AUDIO)
    assert gpu['driver'] == 'vfio-pci' and gpu['override'] == 'vfio-pci', gpu
    assert audio['driver'] == 'vfio-pci' and audio['override'] == 'vfio-pci', audio
    assert gpu['bar_sizes'][0] == 8 * GIB and gpu['bar_sizes'][2] == 8 * MIB, gpu['bar_sizes']
    assert gpu['drm_nodes'] == []
    assert sim.unit_state() == 'active', 'the display manager comes back on the other GPU'
    manager = Manager(sim.bus)
    assert manager.get('PreparedVMs') == ['win11']
    assert steps[0] == 'stop display-manager.service' and steps[-1] == 'start display-manager.service', steps
    assert 'resize BAR 0 of 0000:03:00.0 from 16G to 8G' in steps, steps
    assert sim.device_state('0000:00:02.0') == before['0000:00:02.0'], 'the desktop GPU is left alone'
    # The minimal plan: per function one override, one unbind, one probe; the BARs in between.
    writes = [(w['path'], w['value']) for w in sim.kernel_state()['writes']]
    assert writes == [(f'/devices/{B_AUDIO}/driver_override', 'vfio-pci'), ('/drivers/snd_hda_intel/unbind', B_AUDIO),
                      (f'/devices/{B_GPU}/driver_override', 'vfio-pci'), ('/drivers/amdgpu/unbind', B_GPU),
                      (f'/devices/{B_GPU}/resource0_resize', '13'), (f'/devices/{B_GPU}/resource2_resize', '3'),
                      ('/drivers_probe', B_GPU), ('/drivers_probe', B_AUDIO)], writes

    prepared = len(sim.kernel_state()['writes'])
    steps = release(sim, 'win11')
    assert sim.snapshot() == before, (sim.snapshot(), before)
    assert sim.unit_state() == 'active'
    assert manager.get('PreparedVMs') == []
    assert 'resize BAR 0 of 0000:03:00.0 from 8G to 16G' in steps, steps
    # GPU first, each pinned to its recorded driver while probed, then the override restored.
    writes = [(w['path'], w['value']) for w in sim.kernel_state()['writes'][prepared:]]
    assert writes == [(f'/devices/{B_GPU}/driver_override', 'amdgpu'), ('/drivers/vfio-pci/unbind', B_GPU),
                      (f'/devices/{B_GPU}/resource0_resize', '14'), (f'/devices/{B_GPU}/resource2_resize', '8'),
                      ('/drivers_probe', B_GPU), (f'/devices/{B_GPU}/driver_override', '\n'),
                      (f'/devices/{B_AUDIO}/driver_override', 'snd_hda_intel'), ('/drivers/vfio-pci/unbind', B_AUDIO),
                      ('/drivers_probe', B_AUDIO), (f'/devices/{B_AUDIO}/driver_override', '\n')], writes


@case(machine='b550-vega64', config=B550)
def prepare_and_release_b550_loading_vfio(sim):
    before = sim.snapshot()
    assert not os.path.exists(sim.sysfs('bus/pci/drivers/vfio-pci'))
    steps = prepare(sim, 'win10')
    assert steps[0].startswith('load vfio-pci'), steps
    assert sim.device_state(A_GPU)['driver'] == 'vfio-pci'
    assert sim.device_state(A_AUDIO)['driver'] == 'vfio-pci'
    assert os.path.exists(sim.sysfs('class/vfio/14'))
    release(sim, 'win10')
    assert sim.snapshot() == before
    assert sim.unit_state() == 'active'


@case(config=Z790)
def dry_run_changes_nothing_and_lists_the_real_steps(sim):
    before = sim.snapshot()
    planned = prepare(sim, 'win11', dry_run=True)
    assert sim.snapshot() == before and sim.kernel_state()['writes'] == []
    assert sim.unit_state() == 'active'
    done = prepare(sim, 'win11')
    assert planned == done, (planned, done)
    planned = release(sim, 'win11', dry_run=True)
    assert Manager(sim.bus).get('PreparedVMs') == ['win11']
    assert release(sim, 'win11') == planned


@case(config=Z790)
def repeats_succeed_with_no_steps(sim):
    assert release(sim, 'win11') == [], 'release without prepare'
    assert prepare(sim, 'win11') != []
    assert prepare(sim, 'win11') == []
    assert release(sim, 'win11') != []
    assert release(sim, 'win11') == []


@case(config={'vms': {'win11': {'devices': [B_GPU, B_AUDIO], 'display_manager': 'keep'}}})
def keep_leaves_the_display_manager_alone(sim):
    steps = prepare(sim, 'win11')
    assert not any('display-manager' in step for step in steps), steps
    calls = sim.bus.call('org.freedesktop.systemd1', '/org/freedesktop/systemd1', 'org.freedesktop.DBus.Mock',
                         'GetMethodCalls', 's', ('StopUnit',))[0]
    assert calls == [], calls


@case(machine='shared-group-usb', config={'vms': {'gaming': {'devices': ['0000:0c:00.0', '0000:0c:00.1']}}})
def shared_group_is_refused_and_nothing_is_written(sim):
    before = sim.snapshot()
    try:
        prepare(sim, 'gaming')
        raise AssertionError('PrepareVM succeeded on a non-viable group')
    except BusError as e:
        assert e.name == 'org.gpuswap1.Error.NotViable', e
        assert '0000:0d:00.0 on xhci_hcd' in e.message, e.message
    assert sim.kernel_state()['writes'] == [] and sim.snapshot() == before
    assert sim.unit_state() == 'active'


@case(config=Z790)
def display_manager_not_running_is_not_started(sim):
    sim.bus.call('org.freedesktop.systemd1', '/org/freedesktop/systemd1', 'org.freedesktop.DBus.Mock',
                 'SetUnitActive', 'sb', ('display-manager.service', False))
    steps = prepare(sim, 'win11')
    assert not any('display-manager' in step for step in steps), steps
    steps = release(sim, 'win11')
    assert not any('display-manager' in step for step in steps), steps
    assert sim.unit_state() == 'inactive'


@case(config=Z790)
def release_at_shutdown_leaves_the_display_manager_stopped(sim):
    prepare(sim, 'win11')
    sim.bus.call('org.freedesktop.systemd1', '/org/freedesktop/systemd1', 'org.freedesktop.DBus.Mock',
                 'SetSystemState', 's', ('stopping',))
    steps = release(sim, 'win11')
    assert steps[-1] == 'start display-manager.service (skipped: the system is shutting down)', steps
    assert sim.unit_state() == 'inactive'
    assert sim.device_state(B_GPU)['driver'] == 'amdgpu'


@case(config=Z790)
def a_bar_that_cannot_grow_back_does_not_stop_the_release(sim):
    prepare(sim, 'win11')
    # Meanwhile the bridge window lost the room for the 16G BAR (e.g. another device).
    sim.kernel(op='window', device=B_GPU, size='8G')
    steps = release(sim, 'win11')
    failed = [step for step in steps if 'failed' in step]
    assert len(failed) == 1 and 'resize BAR 0' in failed[0] and 'ENOSPC' in failed[0], steps
    gpu = sim.device_state(B_GPU)
    assert gpu['driver'] == 'amdgpu' and gpu['override'] == '' and len(gpu['drm_nodes']) == 2, gpu
    # amdgpu grows BAR 0 at probe as far as the window lets it.
    assert gpu['bar_sizes'][0] == 8 * GIB and gpu['bar_sizes'][2] == 256 * MIB, gpu['bar_sizes']
    assert Manager(sim.bus).get('PreparedVMs') == []


@case(config={'vms': {'win11': {'devices': [B_GPU, B_AUDIO], 'bars': {B_GPU: {'0': '8G'}}}}})
def growing_a_bar_placed_below_4g_is_refused_before_anything_stops(sim):
    """With "Above 4G Decoding" off the firmware places BARs below 4 GiB, where a 32-bit
    window leaves no room to grow: refused with UnsupportedSize naming the firmware
    setting, before the display manager is stopped or anything is written."""
    sim.kernel(op='firmware-places-bars', device=B_GPU, below_4g=True)
    before = sim.snapshot()
    manager = Manager(sim.bus)
    message = manager.expect_error('org.gpuswap1.Error.UnsupportedSize', 'PrepareVM', 'sa{sv}', ('win11', {}))
    assert 'sits below 4 GiB' in message and 'Above 4G Decoding' in message, message
    assert sim.kernel_state()['writes'] == [] and sim.snapshot() == before and sim.unit_state() == 'active'
    env = {'PATH': os.environ['PATH'], 'DBUS_SYSTEM_BUS_ADDRESS': sim.bus_address}
    findings = json.loads(subprocess.run([os.environ['GPUSWAPCTL'], 'diagnose', 'win11', '--json'], env=env,
                                         capture_output=True, text=True, timeout=60).stdout)
    assert 'bar-no-64bit-window' in [f['code'] for f in findings], findings


if __name__ == '__main__':
    main()
