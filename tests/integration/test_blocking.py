#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Driver writes that block as a real kernel's do: an HDA unbind that waits for a program
keeping its sound file open, a GPU whose remove() never returns. The user gets the desktop
back, the daemon keeps answering, the stuck device is named and left alone until its
write returns, and the daemon can still stop."""
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'sim'))
from simharness import Manager, case, main  # noqa: E402

GPU, AUDIO = '0000:03:00.0', '0000:03:00.1'
# Another device on another driver: FUSE lets one write at a time into one file, so the
# simulated kernel cannot run two devices' writes to the same driver file side by side.
USB = '0000:00:14.0'
DEVICE_INTERFACE = 'org.gpuswap1.Device'
CONFIG = {'timeouts_ms': {'unit': 3000, 'bind': 1500, 'holders': 1000},
          'vms': {'win11': {'devices': [GPU, AUDIO], 'bars': {GPU: {'0': '8G'}}}}}


def journal(sim):
    with open(os.path.join(sim.state_dir, 'state.json')) as f:
        return json.load(f)


def timed(function, *args):
    """(result, milliseconds): a read blocked on the stuck device's lock never answers."""
    started = time.monotonic()
    result = function(*args)
    return result, (time.monotonic() - started) * 1000


def states_except(sim, wedged):
    """The machine without the wedged device, whose driver_override a read would wait for."""
    return {spec['address']: sim.device_state(spec['address'])
            for spec in sim.machine['devices'] if spec['address'] != wedged}


def answers_meanwhile(sim, manager):
    """Properties, ObjectManager and Diagnose answer while a write is stuck in the kernel."""
    figures = {}
    _, figures['Get Driver of the stuck device'] = timed(manager.device, AUDIO, 'Driver')
    _, figures['GetManagedObjects'] = timed(manager.managed_objects)
    _, figures['Diagnose("")'] = timed(manager.call, 'Diagnose', 's', ('',))
    _, figures['Diagnose("win11")'] = timed(manager.call, 'Diagnose', 's', ('win11',))
    for name, milliseconds in figures.items():
        print(f'while the write is stuck: {name} answered in {milliseconds:.1f} ms', flush=True)
        assert milliseconds < 5000, (name, milliseconds)


@case(config=CONFIG)
def stubborn_sound_holder_wedges_the_audio_function_and_the_desktop_comes_back(sim):
    manager = Manager(sim.bus)
    before = sim.snapshot()
    holder = sim.hold(sim.sound_control_node(AUDIO))
    message = manager.expect_error('org.gpuswap1.Error.Inconsistent', 'PrepareVM', 'sa{sv}', ('win11', {}))
    print(message, flush=True)
    for expected in (f'{AUDIO} is wedged', 'drivers/snd_hda_intel/unbind', 'has not returned', 'waits in the kernel',
                     f'{holder.pid} (sleep) holds', 'everything else was rolled back'):
        assert expected in message, (expected, message)
    assert sim.unit_state() == 'active', 'the desktop comes back'
    assert states_except(sim, AUDIO) == {a: s for a, s in before.items() if a != AUDIO}
    assert journal(sim)['operation'] is None
    assert manager.get('PreparedVMs') == [] and manager.get('Operation') == ''

    answers_meanwhile(sim, manager)
    # Calls on other devices are served; calls touching the stuck one are refused.
    _, milliseconds = timed(manager.call, 'RebindDevice', 'ssa{sv}', (USB, 'vfio-pci', {}))
    print(f'while the write is stuck: RebindDevice of another device took {milliseconds:.1f} ms', flush=True)
    assert sim.device_state(USB)['driver'] == 'vfio-pci'
    manager.call('RebindDevice', 'ssa{sv}', (USB, '', {}))
    assert sim.device_state(USB)['driver'] == 'xhci_hcd'
    busy = manager.expect_error('org.gpuswap1.Error.DeviceBusy', 'PrepareVM', 'sa{sv}', ('win11', {}))
    assert f'{AUDIO} is wedged' in busy, busy
    manager.expect_error('org.gpuswap1.Error.DeviceBusy', 'RebindDevice', 'ssa{sv}', (AUDIO, '', {}))

    # The program lets go: the unbind returns, and the device can be used again.
    holder.kill()
    holder.wait()
    assert sim.bus.wait_until(lambda: manager.device(AUDIO, 'Driver') == '', timeout=10)
    assert sim.bus.wait_until(lambda: 'can be used again' in sim.log('gpuswapd.log'), timeout=10)
    manager.call('RebindDevice', 'ssa{sv}', (AUDIO, '', {}))
    assert sim.snapshot() == before, (sim.snapshot(), before)
    manager.prepare('win11')
    assert manager.get('PreparedVMs') == ['win11']


@case(config=CONFIG)
def wedged_gpu_is_left_alone_the_rest_rolls_back_and_the_daemon_still_stops(sim):
    manager = Manager(sim.bus)
    before = sim.snapshot()
    sim.kernel(op='fault', on='unbind', device=GPU, effect='hang')
    message = manager.expect_error('org.gpuswap1.Error.Inconsistent', 'PrepareVM', 'sa{sv}', ('win11', {}))
    print(message, flush=True)
    for expected in (f'{GPU} is wedged', 'drivers/amdgpu/unbind', 'waits in the kernel at '):
        assert expected in message, (expected, message)
    assert sim.unit_state() == 'active'
    assert states_except(sim, GPU) == {a: s for a, s in before.items() if a != GPU}, 'the audio function is back'
    assert journal(sim)['operation'] is None
    answers_meanwhile(sim, manager)

    # systemctl stop: SIGTERM while the write is still stuck in the kernel.
    started = time.monotonic()
    sim.daemon.terminate()
    assert sim.daemon.wait(20) == 0
    print(f'gpuswapd exited {(time.monotonic() - started) * 1000:.0f} ms after SIGTERM with a write stuck', flush=True)
    sim.kernel(op='release-hung')


@case(config=CONFIG)
def sigterm_during_a_stuck_write_rolls_back_the_rest_and_exits(sim):
    manager = Manager(sim.bus)
    before = sim.snapshot()
    sim.kernel(op='fault', on='unbind', device=GPU, effect='hang')
    progress = sim.bus.subscribe('org.gpuswap1', 'org.gpuswap1.Manager', 'Progress')
    pending = manager.call_async('PrepareVM', 'sa{sv}', ('win11', {}))
    assert sim.bus.wait_until(lambda: sim.kernel_state()['hung'] == 1, timeout=30)
    sim.daemon.terminate()
    assert sim.bus.wait_until(lambda: pending.done, timeout=30)
    assert pending.error is not None and pending.error.name == 'org.gpuswap1.Error.Inconsistent', pending.error
    assert sim.daemon.wait(20) == 0
    assert any('roll back' in args[3] for _, _, args in progress), progress
    assert sim.unit_state() == 'active'
    assert states_except(sim, GPU) == {a: s for a, s in before.items() if a != GPU}
    sim.kernel(op='release-hung')


if __name__ == '__main__':
    main()
