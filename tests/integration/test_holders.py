#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Processes holding the devices: DRM nodes are waited for (or noted), sound nodes noted,
and a VFIO group held by a user (QEMU) is never unbound under it."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'sim'))
from simharness import Manager, case, main, variants  # noqa: E402

GPU, AUDIO = '0000:03:00.0', '0000:03:00.1'
SHORT = {'unit': 5000, 'bind': 5000, 'holders': 1000}
LONG = {'unit': 5000, 'bind': 5000, 'holders': 30000}


def profile(holders='wait', timeouts=SHORT):
    return {'timeouts_ms': timeouts, 'vms': {'win11': {'devices': [GPU, AUDIO], 'holders': holders}}}


def vfio_unbinds(sim):
    return [w for w in sim.kernel_state()['writes'] if w['path'] == '/drivers/vfio-pci/unbind']


@case(config=profile())
def a_holder_that_stays_makes_prepare_fail_naming_it(sim):
    before = sim.snapshot()
    holder = sim.hold('dri/card1')
    message = Manager(sim.bus).expect_error('org.gpuswap1.Error.DeviceBusy', 'PrepareVM', 'sa{sv}', ('win11', {}))
    assert f'{holder.pid} (sleep) holds /dev/dri/card1' in message, message
    assert sim.snapshot() == before
    assert not [w for w in sim.kernel_state()['writes'] if w['path'].endswith('unbind')]


@case(config=profile(timeouts=LONG))
def a_holder_that_leaves_lets_prepare_go_on(sim):
    manager = Manager(sim.bus)
    holder = sim.hold('dri/renderD129')
    progress = sim.bus.subscribe('org.gpuswap1', 'org.gpuswap1.Manager', 'Progress')
    pending = manager.call_async('PrepareVM', 'sa{sv}', ('win11', {}))
    assert sim.bus.wait_until(lambda: any('no process holds' in args[3] for _, _, args in progress))
    assert not sim.bus.wait_until(lambda: pending.done, timeout=0.5), 'it must wait for the holder'
    holder.kill()
    holder.wait()
    assert sim.bus.wait_until(lambda: pending.done, timeout=30)
    assert pending.error is None, pending.error
    assert sim.device_state(GPU)['driver'] == 'vfio-pci'


@case(config=profile(holders='ignore'))
def ignore_goes_on_and_names_the_holder(sim):
    holder = sim.hold('dri/card1')
    sound = sim.hold('snd/controlC1', reacts=True)
    steps = Manager(sim.bus).prepare('win11')
    line = next(step for step in steps if 'holds' in step)
    assert f'ignored {holder.pid} (sleep) holds /dev/dri/card1' in line, steps
    assert f'{sound.pid} (head) holds /dev/snd/controlC1' in line, line
    assert sim.device_state(GPU)['driver'] == 'vfio-pci'


@case(config=profile())
def sound_holders_are_noted_and_the_unbind_waits_until_they_close(sim):
    # PipeWire and PulseAudio close a card's files when the driver disconnects it.
    sound = sim.hold('snd/controlC1', reacts=True)
    steps = Manager(sim.bus).prepare('win11')
    assert any(f'{sound.pid} (head) holds /dev/snd/controlC1' in step for step in steps), steps
    assert sound.wait(5) == 0, 'the holder saw the card disconnected and closed it'
    assert sim.device_state(AUDIO)['driver'] == 'vfio-pci'


@case(config=profile(timeouts=LONG))
def release_waits_for_the_vfio_user_without_unbinding(sim):
    manager = Manager(sim.bus)
    before = sim.snapshot()
    manager.prepare('win11')
    qemu = sim.hold('vfio/14')
    pending = manager.call_async('ReleaseVM', 'sa{sv}', ('win11', {}))
    assert sim.bus.wait_until(lambda: manager.get('Operation') == 'release:win11')
    answered = 0
    while answered < 5:
        assert manager.call('Diagnose', 's', ('',)) is not None
        assert manager.device(GPU, 'Driver') == 'vfio-pci'
        answered += 1
        assert not sim.bus.wait_until(lambda: pending.done, timeout=0.1)
    assert vfio_unbinds(sim) == [], 'nothing is unbound while a VFIO user holds the group'
    qemu.kill()
    qemu.wait()
    assert sim.bus.wait_until(lambda: pending.done, timeout=30)
    assert pending.error is None, pending.error
    assert sim.snapshot() == before


@case(config=profile())
def a_vfio_user_outliving_the_deadline_fails_the_release(sim):
    manager = Manager(sim.bus)
    manager.prepare('win11')
    prepared = sim.snapshot()
    qemu = sim.hold('vfio/14')
    message = manager.expect_error('org.gpuswap1.Error.DeviceBusy', 'ReleaseVM', 'sa{sv}', ('win11', {}))
    assert f'{qemu.pid} (sleep) holds /dev/vfio/14' in message, message
    assert vfio_unbinds(sim) == []
    assert sim.snapshot() == prepared and manager.get('PreparedVMs') == ['win11']


@case(config=profile())
def rebind_refuses_a_held_device_unless_forced(sim):
    manager = Manager(sim.bus)
    holder = sim.hold('dri/card1')
    message = manager.expect_error('org.gpuswap1.Error.DeviceBusy', 'RebindDevice', 'ssa{sv}', (GPU, 'vfio-pci', {}))
    assert f'{holder.pid} (sleep)' in message, message
    assert manager.call('RebindDevice', 'ssa{sv}', (GPU, 'vfio-pci', variants({'force': True})))[0] == 'amdgpu'
    assert sim.device_state(GPU)['driver'] == 'vfio-pci'


if __name__ == '__main__':
    main()
