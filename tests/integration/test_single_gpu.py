#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""One GPU only (machine b650-rx7900-single): "display_manager": "stop" keeps the display
manager stopped while the VM runs and starts it at release; Diagnose says when a profile
would take the only display device without it; faults and restarts end as before."""
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'sim'))
from simharness import Manager, case, main  # noqa: E402

GPU, AUDIO = '0000:03:00.0', '0000:03:00.1'
MACHINE = 'b650-rx7900-single'
TIMEOUTS = {'unit': 2000, 'bind': 2000, 'holders': 1000}
CONFIG = {'timeouts_ms': TIMEOUTS,
          'vms': {'win11': {'devices': [GPU, AUDIO], 'display_manager': 'stop'},
                  'careless': {'devices': [GPU, AUDIO]}}}
CTL = os.environ.get('GPUSWAPCTL')


def ctl(sim, *args):
    env = {'PATH': os.environ['PATH'], 'DBUS_SYSTEM_BUS_ADDRESS': sim.bus_address}
    return subprocess.run([CTL, *args], env=env, capture_output=True, text=True, timeout=120)


@case(machine=MACHINE, config=CONFIG)
def stop_keeps_the_display_manager_stopped_until_release(sim):
    manager = Manager(sim.bus)
    before = sim.snapshot()
    steps = manager.prepare('win11')
    assert steps[0] == 'stop display-manager.service', steps
    assert not any(step.startswith('start ') for step in steps), steps
    assert sim.device_state(GPU)['driver'] == 'vfio-pci' and sim.device_state(AUDIO)['driver'] == 'vfio-pci'
    assert sim.unit_state() == 'inactive'
    released = manager.release('win11')
    assert released[-1] == 'start display-manager.service', released
    assert 'stop display-manager.service' not in released, released
    assert sim.unit_state() == 'active' and sim.snapshot() == before


@case(machine=MACHINE, config=CONFIG)
def a_restart_of_gpuswapd_still_starts_the_display_manager_at_release(sim):
    """The prepared VM's record says the display manager was left stopped: it survives a
    restart of the daemon (the state directory), and the release still starts it."""
    manager = Manager(sim.bus)
    before = sim.snapshot()
    manager.prepare('win11')
    with open(os.path.join(sim.state_dir, 'state.json')) as f:
        assert json.load(f)['prepared']['win11']['left_stopped'] == ['display-manager.service']
    sim.stop_daemon()
    sim.start_daemon()
    assert Manager(sim.bus).release('win11')[-1] == 'start display-manager.service'
    assert sim.unit_state() == 'active' and sim.snapshot() == before


@case(machine=MACHINE, config=CONFIG)
def a_failed_prepare_starts_the_display_manager_again(sim):
    manager = Manager(sim.bus)
    before = sim.snapshot()
    sim.kernel(op='fault', on='unbind', device=GPU, effect='refuse', errno='EBUSY')
    message = manager.expect_error('org.gpuswap1.Error.KernelRefused', 'PrepareVM', 'sa{sv}', ('win11', {}))
    assert 'rolled back' in message, message
    sim.kernel(op='clear-faults')
    assert sim.unit_state() == 'active' and sim.snapshot() == before


@case(machine=MACHINE, config=CONFIG)
def diagnose_asks_for_stop_when_the_only_display_goes(sim):
    careless = json.loads(ctl(sim, 'diagnose', 'careless', '--json').stdout)
    codes = [(f['severity'], f['code']) for f in careless]
    assert ('error', 'only-display') in codes and ('warning', 'boot-display') in codes, careless
    only = next(f for f in careless if f['code'] == 'only-display')
    assert '"display_manager": "stop"' in only['message'], only
    assert ctl(sim, 'diagnose', 'careless').returncode == 1
    fine = json.loads(ctl(sim, 'diagnose', 'win11', '--json').stdout)
    assert 'only-display' not in [f['code'] for f in fine] and 'boot-display' in [f['code'] for f in fine], fine


@case(machine=MACHINE, config=CONFIG)
def dry_run_shows_no_restart(sim):
    result = ctl(sim, 'prepare', 'win11', '--dry-run')
    assert result.returncode == 0 and result.stdout.startswith('would 1. stop display-manager.service'), result
    assert 'start display-manager.service' not in result.stdout, result.stdout


if __name__ == '__main__':
    main()
