#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""State-changing calls: the queue, reads during a swap, bad input, Reload, RebindDevice
and ResizeBar, the domain XML."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'sim'))
from gi.repository import GLib  # noqa: E402
from simharness import Manager, case, main, variants  # noqa: E402

GIB, MIB = 1 << 30, 1 << 20
GPU, AUDIO, IGPU = '0000:03:00.0', '0000:03:00.1', '0000:00:02.0'
TWO_VMS = {'vms': {'win11': {'devices': [GPU, AUDIO], 'bars': {GPU: {'0': '8G'}}},
                   'igpu-vm': {'devices': [IGPU]},
                   'gpu-only': {'devices': [GPU, AUDIO], 'display_manager': 'keep'}}}
SYSTEMD_UNITS = [{'name': 'gdm.service', 'aliases': ['display-manager.service'], 'active': True,
                  'stop_ms': 300, 'start_ms': 300}]


def start_prepare(manager, vm, **options):
    return manager.call_async('PrepareVM', 'sa{sv}', (vm, variants(options)))


@case(config=TWO_VMS, latency=True, units=SYSTEMD_UNITS)
def calls_sent_together_run_one_after_the_other(sim):
    manager = Manager(sim.bus)
    finished = sim.bus.subscribe('org.gpuswap1', 'org.gpuswap1.Manager', 'OperationFinished')
    first = start_prepare(manager, 'win11')
    second = start_prepare(manager, 'igpu-vm')
    assert sim.bus.wait_until(lambda: first.done and second.done, timeout=60)
    assert first.error is None and second.error is None, (first.error, second.error)
    assert [args[0] for _, _, args in finished] == ['prepare:win11', 'prepare:igpu-vm'], finished
    assert all(args[1] for _, _, args in finished)
    assert manager.get('PreparedVMs') == ['igpu-vm', 'win11']
    assert sim.device_state(IGPU)['driver'] == 'vfio-pci' and sim.device_state(GPU)['driver'] == 'vfio-pci'


@case(config=TWO_VMS, latency=True, units=SYSTEMD_UNITS)
def no_queue_answers_busy_while_another_runs(sim):
    manager = Manager(sim.bus)
    first = start_prepare(manager, 'win11')
    assert sim.bus.wait_until(lambda: manager.get('Operation') == 'prepare:win11')
    message = manager.expect_error('org.gpuswap1.Error.Busy', 'PrepareVM', 'sa{sv}',
                                   ('igpu-vm', variants({'no_queue': True})))
    assert 'prepare:win11' in message, message
    manager.expect_error('org.gpuswap1.Error.NoSuchProfile', 'PrepareVM', 'sa{sv}', ('nope', {}))
    assert sim.bus.wait_until(lambda: first.done, timeout=60) and first.error is None, first.error
    assert sim.device_state(IGPU)['driver'] == 'i915'


@case(config=TWO_VMS)
def a_device_of_a_prepared_vm_is_busy(sim):
    manager = Manager(sim.bus)
    manager.prepare('win11')
    snapshot = sim.snapshot()
    message = manager.expect_error('org.gpuswap1.Error.DeviceBusy', 'PrepareVM', 'sa{sv}', ('gpu-only', {}))
    assert 'win11' in message and GPU in message, message
    assert sim.snapshot() == snapshot


@case(config=TWO_VMS, latency=True, units=SYSTEMD_UNITS)
def reads_answer_during_a_swap(sim):
    manager = Manager(sim.bus)
    progress = sim.bus.subscribe('org.gpuswap1', 'org.gpuswap1.Manager', 'Progress')
    pending = start_prepare(manager, 'win11')
    assert sim.bus.wait_until(lambda: manager.get('Operation') == 'prepare:win11')
    answered = 0
    while not pending.done:
        assert manager.call('Diagnose', 's', ('win11',)) is not None
        assert manager.device(GPU, 'Address') == GPU
        assert manager.get('Profiles') == ['gpu-only', 'igpu-vm', 'win11']
        answered += 1
        sim.bus.wait_until(lambda: pending.done, timeout=0.05)
    print(f'{answered} rounds of reads answered during the swap', flush=True)
    assert answered >= 3 and pending.error is None, (answered, pending.error)
    steps = [args for _, _, args in progress]
    assert [s[1] for s in steps] == list(range(1, steps[0][2] + 1)), steps
    assert all(s[0] == 'prepare:win11' for s in steps)
    assert manager.get('Operation') == ''


BAD_INPUTS = [
    ('PrepareVM', 'sa{sv}', ('', {}), 'InvalidArgument'),
    ('PrepareVM', 'sa{sv}', ('x' * 10240, {}), 'InvalidArgument'),
    ('PrepareVM', 'sa{sv}', ('a/b', {}), 'InvalidArgument'),
    ('PrepareVM', 'sa{sv}', ('win11', {'dry-run': GLib.Variant('s', 'yes')}), 'InvalidArgument'),
    ('PrepareVM', 'sa{sv}', ('win11', {'bogus': GLib.Variant('b', True)}), 'InvalidArgument'),
    ('PrepareVM', 'sa{sv}', ('win11', {'force': GLib.Variant('b', True)}), 'InvalidArgument'),
    ('PrepareVM', 'sa{sv}', ('win11', {'no-queue': GLib.Variant('u', 1)}), 'InvalidArgument'),
    ('PrepareVM', 'sa{sv}', ('unknown-vm', {}), 'NoSuchProfile'),
    ('ReleaseVM', 'sa{sv}', ('', {}), 'InvalidArgument'),
    ('ReleaseVM', 'sa{sv}', ('win11', {'domain-xml': GLib.Variant('s', '<domain/>')}), 'InvalidArgument'),
    ('RebindDevice', 'ssa{sv}', ('03:00.0', 'vfio-pci', {}), 'InvalidArgument'),
    ('RebindDevice', 'ssa{sv}', ('0000:03:00.0/../..', 'vfio-pci', {}), 'InvalidArgument'),
    ('RebindDevice', 'ssa{sv}', ('0000:03:00.8', 'vfio-pci', {}), 'InvalidArgument'),
    ('RebindDevice', 'ssa{sv}', ('0000:09:00.0', 'vfio-pci', {}), 'NoSuchDevice'),
    ('RebindDevice', 'ssa{sv}', (AUDIO, '../vfio-pci', {}), 'InvalidArgument'),
    ('RebindDevice', 'ssa{sv}', (AUDIO, '..', {}), 'InvalidArgument'),
    ('RebindDevice', 'ssa{sv}', (AUDIO, 'vfio/pci', {}), 'InvalidArgument'),
    ('RebindDevice', 'ssa{sv}', (AUDIO, 'x' * 65, {}), 'InvalidArgument'),
    ('RebindDevice', 'ssa{sv}', (AUDIO, 'nouveau', {}), 'NoSuchDriver'),
    ('RebindDevice', 'ssa{sv}', (AUDIO, 'vfio-pci', {'force': GLib.Variant('s', 'true')}), 'InvalidArgument'),
    ('ResizeBar', 'suta{sv}', (GPU, 6, 8 * GIB, {}), 'InvalidArgument'),
    ('ResizeBar', 'suta{sv}', (GPU, 0, 3, {}), 'InvalidArgument'),
    ('ResizeBar', 'suta{sv}', (GPU, 0, 12 * MIB, {}), 'InvalidArgument'),
    ('ResizeBar', 'suta{sv}', (GPU, 0, 512 * 1024, {}), 'InvalidArgument'),
    ('ResizeBar', 'suta{sv}', ('0000:09:00.0', 0, 8 * GIB, {}), 'NoSuchDevice'),
    ('ResizeBar', 'suta{sv}', (GPU, 0, 32 * GIB, {}), 'UnsupportedSize'),
    ('ResizeBar', 'suta{sv}', (GPU, 5, 2 * MIB, {}), 'UnsupportedSize'),
    ('ResizeBar', 'suta{sv}', (GPU, 0, 8 * GIB, {}), 'DeviceBusy'),  # amdgpu is bound
    ('ResizeBar', 'suta{sv}', (GPU, 0, 8 * GIB, {'no-queue': GLib.Variant('i', 1)}), 'InvalidArgument'),
    ('Diagnose', 's', ('a' * 256,), 'InvalidArgument'),
]


@case(config=TWO_VMS)
def bad_input_gets_its_error_and_writes_nothing(sim):
    manager = Manager(sim.bus)
    before = sim.snapshot()
    for method, signature, args, error in BAD_INPUTS:
        message = manager.expect_error('org.gpuswap1.Error.' + error, method, signature, args)
        assert message, (method, args)
    assert sim.kernel_state()['writes'] == [], sim.kernel_state()['writes']
    assert sim.snapshot() == before
    print(f'{len(BAD_INPUTS)} bad inputs refused, nothing written', flush=True)


@case(config=TWO_VMS)
def reload_keeps_a_good_config_and_release_follows_the_record(sim):
    manager = Manager(sim.bus)
    before = sim.snapshot()
    manager.prepare('win11')
    sim.write_config('{"vms": {"win11": {"holders": "sometimes"}}}')
    message = manager.expect_error('org.gpuswap1.Error.BadConfig', 'Reload')
    assert 'vms/win11/holders' in message, message
    assert manager.get('Profiles') == ['gpu-only', 'igpu-vm', 'win11']
    sim.write_config({'vms': {'other': {}}})
    manager.call('Reload')
    assert manager.get('Profiles') == ['other']
    assert manager.get('PreparedVMs') == ['win11']
    manager.release('win11')
    assert sim.snapshot() == before, 'released from what was recorded at prepare'
    manager.expect_error('org.gpuswap1.Error.NoSuchProfile', 'PrepareVM', 'sa{sv}', ('win11', {}))


@case(config=TWO_VMS)
def rebind_and_back_to_the_default_driver(sim):
    manager = Manager(sim.bus)
    assert manager.call('RebindDevice', 'ssa{sv}', (AUDIO, 'vfio-pci', {}))[0] == 'snd_hda_intel'
    assert sim.device_state(AUDIO)['driver'] == 'vfio-pci' and sim.device_state(AUDIO)['override'] == 'vfio-pci'
    assert manager.device(AUDIO, 'Driver') == 'vfio-pci'
    assert manager.call('RebindDevice', 'ssa{sv}', (AUDIO, '', {}))[0] == 'vfio-pci'
    assert sim.device_state(AUDIO) == {'driver': 'snd_hda_intel', 'override': '', 'bar_sizes': [16384, 0, 0, 0, 0, 0],
                                       'drm_nodes': []}
    manager.prepare('win11')
    message = manager.expect_error('org.gpuswap1.Error.DeviceBusy', 'RebindDevice', 'ssa{sv}', (AUDIO, '', {}))
    assert 'win11' in message


@case(config=TWO_VMS)
def resize_bar_on_vfio_returns_the_previous_size(sim):
    manager = Manager(sim.bus)
    manager.call('RebindDevice', 'ssa{sv}', (GPU, 'vfio-pci', {}))
    message = manager.expect_error('org.gpuswap1.Error.UnsupportedSize', 'ResizeBar', 'suta{sv}', (GPU, 0, 32 * GIB, {}))
    assert '256M 512M 1G 2G 4G 8G 16G' in message, message
    assert manager.call('ResizeBar', 'suta{sv}', (GPU, 0, 4 * GIB, {}))[0] == 16 * GIB
    state = sim.device_state(GPU)
    assert state['bar_sizes'][0] == 4 * GIB and state['driver'] == 'vfio-pci', state
    assert (0, 4 * GIB, 0x7f00) in manager.device(GPU, 'Bars')


@case(config={'vms': {'from-xml': {'display_manager': 'keep'}}})
def devices_come_from_the_domain_xml(sim):
    xml = f'''<domain type='kvm'><name>from-xml</name><devices>
      <hostdev mode='subsystem' type='pci' managed='yes'>
        <source><address domain='0x0000' bus='0x03' slot='0x00' function='0x0'/></source></hostdev>
      <hostdev mode='subsystem' type='pci' managed='yes'>
        <source><address domain='0x0000' bus='0x03' slot='0x00' function='0x1'/></source></hostdev>
      <hostdev mode='subsystem' type='usb'><source><vendor id='0x1234'/></source></hostdev>
    </devices></domain>'''
    manager = Manager(sim.bus)
    steps = manager.prepare('from-xml', domain_xml=xml)
    assert sim.device_state(GPU)['driver'] == 'vfio-pci' and sim.device_state(AUDIO)['driver'] == 'vfio-pci', steps
    manager.release('from-xml')
    assert sim.device_state(GPU)['driver'] == 'amdgpu'
    manager.expect_error('org.gpuswap1.Error.InvalidArgument', 'PrepareVM', 'sa{sv}',
                         ('from-xml', variants({'domain_xml': '<domain><devices>'})))
    manager.expect_error('org.gpuswap1.Error.InvalidArgument', 'PrepareVM', 'sa{sv}', ('from-xml', {}))


if __name__ == '__main__':
    main()
