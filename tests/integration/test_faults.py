#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Faults during a hand-over: whatever fails, the machine ends exactly as it was before
the call (every driver link, override, BAR size and the display manager's state) and the
caller gets the error DESIGN.md names. Also: SIGTERM and SIGKILL in the middle."""
import json
import os
import signal
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'sim'))
from simharness import Manager, case, main, variants  # noqa: E402

GPU, AUDIO = '0000:03:00.0', '0000:03:00.1'
CONFIG = {'timeouts_ms': {'unit': 1000, 'bind': 1000, 'holders': 1000},
          'vms': {'win11': {'devices': [GPU, AUDIO], 'bars': {GPU: {'0': '8G'}}}}}
# With the latency model on, amdgpu takes 1.5 s to bind: deadlines must allow for it.
SLOW_CONFIG = dict(CONFIG, timeouts_ms={'unit': 5000, 'bind': 10000, 'holders': 5000})
MOCK = ('org.freedesktop.systemd1', '/org/freedesktop/systemd1', 'org.freedesktop.DBus.Mock')


def machine_state(sim):
    return sim.snapshot(), sim.unit_state()


def journal(sim):
    with open(os.path.join(sim.state_dir, 'state.json')) as f:
        return json.load(f)


def job(unit_operation, result):
    def inject(sim):
        sim.bus.call(*MOCK, 'SetJobBehaviour', 'sssi', ('display-manager.service', unit_operation, result, 0))
    return inject


def kernel_fault(**fault):
    def inject(sim):
        sim.kernel(op='fault', **fault)
    return inject


# name: (injected fault, the error, during release rather than prepare)
FAULTS = {
    'display_manager_stop_fails': (job('stop', 'failed'), 'DisplayManagerFailed', False),
    'display_manager_stop_hangs': (job('stop', 'hang'), 'DisplayManagerFailed', False),
    'display_manager_start_fails': (job('start', 'failed'), 'DisplayManagerFailed', False),
    'gpu_unbind_refused_ebusy': (kernel_fault(on='unbind', device=GPU, effect='refuse', errno='EBUSY'),
                                 'KernelRefused', False),
    'gpu_unbind_never_reported': (kernel_fault(on='unbind', device=GPU, effect='no-event', times=1), 'Timeout', False),
    'gpu_bind_never_arrives': (kernel_fault(on='probe', device=GPU, effect='noop', times=1), 'Timeout', False),
    'gpu_bind_not_reported': (kernel_fault(on='probe', device=GPU, effect='no-event', times=1), 'Timeout', False),
    'gpu_binds_the_wrong_driver': (kernel_fault(on='probe', device=GPU, effect='wrong-driver', bind_instead='amdgpu',
                                                times=1), 'KernelRefused', False),
    'gpu_resize_refused_enospc': (kernel_fault(on='resize', device=GPU, effect='refuse', errno='ENOSPC'),
                                  'KernelRefused', False),
    'audio_unbind_refused_enodev': (kernel_fault(on='unbind', device=AUDIO, effect='refuse', errno='ENODEV'),
                                    'KernelRefused', False),
    'audio_binds_the_wrong_driver': (kernel_fault(on='probe', device=AUDIO, effect='wrong-driver',
                                                  bind_instead='snd_hda_intel', times=1), 'KernelRefused', False),
    'release_display_manager_stop_fails': (job('stop', 'failed'), 'DisplayManagerFailed', True),
    'release_gpu_binds_the_wrong_driver': (kernel_fault(on='probe', device=GPU, effect='wrong-driver',
                                                        bind_instead='vfio-pci', driver='amdgpu', times=1),
                                           'KernelRefused', True),
    'release_audio_bind_never_arrives': (kernel_fault(on='probe', device=AUDIO, effect='noop', driver='snd_hda_intel',
                                                      times=1), 'Timeout', True),
}


def make_fault_case(name, inject, error, during_release):
    def run(sim):
        manager = Manager(sim.bus)
        if during_release:
            manager.prepare('win11')
        before = machine_state(sim)
        inject(sim)
        message = manager.expect_error('org.gpuswap1.Error.' + error,
                                       'ReleaseVM' if during_release else 'PrepareVM', 'sa{sv}', ('win11', {}))
        assert 'rolled back' in message, message
        sim.kernel(op='clear-faults')
        assert machine_state(sim) == before, (machine_state(sim), before)
        assert manager.get('PreparedVMs') == (['win11'] if during_release else [])
        assert journal(sim)['operation'] is None
        print(f'{name}: {error}: {message}', flush=True)
    run.__name__ = 'fault_' + name
    case(config=CONFIG)(run)


for fault_name, (fault_inject, fault_error, fault_release) in FAULTS.items():
    make_fault_case(fault_name, fault_inject, fault_error, fault_release)


@case(config=SLOW_CONFIG, latency=True)
def sigterm_in_the_middle_rolls_back_then_exits(sim):
    manager = Manager(sim.bus)
    before = machine_state(sim)
    progress = sim.bus.subscribe('org.gpuswap1', 'org.gpuswap1.Manager', 'Progress')
    pending = manager.call_async('PrepareVM', 'sa{sv}', ('win11', {}))
    assert sim.bus.wait_until(lambda: any(args[1] == 4 for _, _, args in progress), timeout=30)
    sim.daemon.send_signal(signal.SIGTERM)
    assert sim.bus.wait_until(lambda: pending.done, timeout=60)
    assert pending.error is not None and pending.error.name == 'org.gpuswap1.Error.ShuttingDown', pending.error
    assert sim.daemon.wait(30) == 0
    assert machine_state(sim) == before
    assert journal(sim)['operation'] is None


def kill_at_step_and_restart(sim, manager, method, step, before):
    """Starts `method` for win11, kills gpuswapd at `step` and starts it again; returns
    the interrupted operation once the restarted daemon has finished it and the machine
    is `before` again."""
    progress = sim.bus.subscribe('org.gpuswap1', 'org.gpuswap1.Manager', 'Progress')
    manager.call_async(method, 'sa{sv}', ('win11', variants({})))
    assert sim.bus.wait_until(lambda: any(args[1] == step for _, _, args in progress), timeout=30), step
    sim.daemon.kill()
    sim.daemon.wait()
    interrupted = journal(sim)['operation']
    assert interrupted, step
    sim.start_daemon()
    assert sim.bus.wait_until(lambda: journal(sim)['operation'] is None, timeout=60), step
    assert sim.bus.wait_until(lambda: machine_state(sim) == before, timeout=10), (step, machine_state(sim))
    assert manager.get('PreparedVMs') == []
    return interrupted


SLOW_DM = [{'name': 'gdm.service', 'aliases': ['display-manager.service'], 'active': True, 'stop_ms': 300,
            'start_ms': 300}]


@case(config=SLOW_CONFIG, latency=True, units=SLOW_DM)
def killed_at_any_step_and_restarted_returns_to_before(sim):
    manager = Manager(sim.bus)
    before = machine_state(sim)
    steps = len(manager.prepare('win11', dry_run=True))
    for step in range(1, steps + 1):
        interrupted = kill_at_step_and_restart(sim, manager, 'PrepareVM', step, before)
        assert interrupted['step'] >= step, interrupted
        print(f'killed at step {step} of {steps} ({interrupted["name"]}): rolled back after the restart', flush=True)


@case(config=SLOW_CONFIG, latency=True, units=SLOW_DM)
def killed_at_any_release_step_and_restarted_ends_released(sim):
    """Its VM is gone: an interrupted release is completed, never rolled back to vfio-pci."""
    manager = Manager(sim.bus)
    before = machine_state(sim)
    manager.prepare('win11')
    steps = len(manager.release('win11', dry_run=True))
    for step in range(1, steps + 1):
        if step > 1:
            manager.prepare('win11')
        interrupted = kill_at_step_and_restart(sim, manager, 'ReleaseVM', step, before)
        assert interrupted['name'] == 'release:win11', interrupted
        print(f'killed at release step {step} of {steps}: completed after the restart', flush=True)


@case(machine='b550-vega64', config={'timeouts_ms': {'unit': 2000, 'bind': 2000, 'holders': 1000},
                                     'vms': {'win10': {'devices': ['0000:0b:00.0', '0000:0b:00.1']}}})
def modprobe_that_loads_nothing_is_no_such_driver(sim):
    """modprobe@.service's job is "done" even when modprobe failed: only the driver's
    directory tells, and its absence is reported with where to look."""
    manager = Manager(sim.bus)
    before = machine_state(sim)
    sim.bus.call(*MOCK, 'SetJobBehaviour', 'sssi', ('modprobe@vfio_pci.service', 'start', 'modprobe-fails', 0))
    message = manager.expect_error('org.gpuswap1.Error.NoSuchDriver', 'PrepareVM', 'sa{sv}', ('win10', {}))
    assert 'journalctl -u modprobe@vfio_pci.service' in message and 'rolled back' in message, message
    assert machine_state(sim) == before
    assert sim.kernel_state()['writes'] == [], 'nothing is written before vfio-pci is there'
    # Loaded for real, the same call succeeds: the unit is inactive after its job, as on systemd.
    manager.prepare('win10')
    assert sim.unit_state('modprobe@vfio_pci.service') == 'inactive'
    assert sim.device_state('0000:0b:00.0')['driver'] == 'vfio-pci'


if __name__ == '__main__':
    main()
