#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""gpuswapd as a service: its Manager, configuration, signals, readiness and idleness."""
import os
import re
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ElementTree

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'sim'))
from simharness import SOURCE_ROOT, BusError, Manager, case, main  # noqa: E402

TWO_PROFILES = {'vms': {'win11': {'devices': ['0000:03:00.0', '0000:03:00.1']}, 'linux-test': {}}}


def expect_error(name, function, *args):
    try:
        function(*args)
    except BusError as e:
        assert e.name == name, f'expected {name}, got {e}'
        return e.message
    raise AssertionError(f'expected {name}, the call succeeded')


@case(config=TWO_PROFILES)
def manager_properties(sim):
    manager = Manager(sim.bus)
    assert manager.get('Version') == os.environ.get('GPUSWAP_VERSION', manager.get('Version'))
    assert re.fullmatch(r'\d+\.\d+\.\d+', manager.get('Version'))
    assert manager.get('Profiles') == ['linux-test', 'win11']
    assert manager.get('PreparedVMs') == []
    assert manager.get('Operation') == ''


@case(machine='shared-group-usb', config={'vms': {'gaming': {'devices': ['0000:0c:00.0', '0000:0c:00.1'],
                                                            'bars': {'0000:0c:00.0': {'0': '8G'}}}}})
def diagnose_names_what_blocks_a_profile(sim):
    manager = Manager(sim.bus)
    host = manager.call('Diagnose', 's', ('',))[0]
    # IOMMU on, vfio-pci loaded, a profile; no libvirt hook here, and an RX 580 needs vendor-reset
    assert [code for _, code, _ in host] == ['hook-missing', 'needs-vendor-reset'], host
    findings = manager.call('Diagnose', 's', ('gaming',))[0]
    codes = [(severity, code) for severity, code, _ in findings]
    assert codes == [('error', 'group-not-viable'), ('error', 'bar-not-resizable'), ('warning', 'hook-missing'),
                     ('warning', 'needs-vendor-reset')], findings
    assert '0000:0d:00.0 on xhci_hcd' in findings[0][2], findings[0][2]
    assert 'NoSuchProfile' not in str(findings)
    message = expect_error('org.gpuswap1.Error.NoSuchProfile', manager.call, 'Diagnose', 's', ('nope',))
    assert 'nope' in message
    expect_error('org.gpuswap1.Error.InvalidArgument', manager.call, 'Diagnose', 's', ('a/b',))
    expect_error('org.gpuswap1.Error.InvalidArgument', manager.call, 'Diagnose', 's', ('x' * 256,))


@case(machine='b550-vega64', config={})
def diagnose_host_without_vfio_and_profiles(sim):
    findings = Manager(sim.bus).call('Diagnose', 's', ('',))[0]
    assert [(s, c) for s, c, _ in findings] == [('warning', 'hook-missing'), ('warning', 'needs-vendor-reset'),
                                                ('warning', 'no-profiles'), ('info', 'vfio-pci-not-loaded')], findings
    assert '0000:0b:00.0 [1002:687f]' in findings[1][2], findings[1][2]


@case(config={'display_manager': 'nodm.service', 'vms': {'restarts': {'devices': ['0000:03:00.0', '0000:03:00.1']},
                                                        'keeps': {'devices': ['0000:03:00.0', '0000:03:00.1'],
                                                                  'display_manager': 'keep'}}})
def diagnose_finds_a_display_manager_systemd_does_not_know(sim):
    manager = Manager(sim.bus)
    findings = manager.call('Diagnose', 's', ('restarts',))[0]
    missing = [message for _, code, message in findings if code == 'display-manager-missing']
    assert len(missing) == 1 and 'nodm.service' in missing[0], findings
    assert not [code for _, code, _ in manager.call('Diagnose', 's', ('keeps',))[0] if code == 'display-manager-missing']


@case(config={'vms': {'win11': {}}}, kernel_cmdline='quiet intel_iommu=on vfio-pci.ids=1002:73bf,1002:ab28')
def diagnose_finds_devices_claimed_by_vfio_ids(sim):
    findings = Manager(sim.bus).call('Diagnose', 's', ('',))[0]
    claimed = [message for _, code, message in findings if code == 'vfio-ids-claim']
    assert len(claimed) == 2 and 'the kernel command line' in claimed[0], findings


@case(daemon=False)
def bad_config_refuses_to_start(sim):
    sim.write_config('{"vms": {"win11": {"devices": ["0000:03:00.0"], "bars": {"0000:03:00.0": {"7": "8G"}}}}}')
    daemon = sim.start_daemon(wait=False)
    assert daemon.wait(30) == 1
    log = sim.log('gpuswapd.log')
    assert sim.config_path in log and 'vms/win11/bars/0000:03:00.0/7' in log, log
    sim.write_config('{"vms": {,}}')
    daemon = sim.start_daemon(wait=False)
    assert daemon.wait(30) == 1
    assert sim.config_path + ':1:10: syntax error' in sim.log('gpuswapd.log'), sim.log('gpuswapd.log')


@case(daemon=False)
def missing_config_means_no_profiles(sim):
    sim.start_daemon()
    assert not os.path.exists(sim.config_path)
    assert Manager(sim.bus).get('Profiles') == []


@case(config=TWO_PROFILES)
def sighup_reloads_and_keeps_a_good_config(sim):
    manager = Manager(sim.bus)
    changes = sim.bus.subscribe('org.gpuswap1', 'org.freedesktop.DBus.Properties', 'PropertiesChanged',
                                '/org/gpuswap1')
    sim.write_config({'vms': {'win10': {}}})
    sim.daemon.send_signal(signal.SIGHUP)
    assert sim.bus.wait_until(lambda: any(args[1].get('Profiles') == ['win10'] for _, _, args in changes)), changes
    assert manager.get('Profiles') == ['win10']
    sim.write_config('{"vms": {"broken": {"holders": "never"}}}')
    sim.daemon.send_signal(signal.SIGHUP)
    assert sim.bus.wait_until(lambda: 'kept the previous configuration' in sim.log('gpuswapd.log'))
    assert 'vms/broken/holders' in sim.log('gpuswapd.log')
    assert manager.get('Profiles') == ['win10']
    assert sim.daemon.poll() is None


@case()
def sigterm_stops_cleanly(sim):
    assert sim.stop_daemon(signal.SIGTERM) == 0
    assert sim.wait_for_notification('STOPPING=1', timeout=1)


@case(daemon=False)
def ready_after_the_name_is_owned(sim):
    sim.start_daemon()
    assert sim.bus.call('org.freedesktop.DBus', '/org/freedesktop/DBus', 'org.freedesktop.DBus', 'NameHasOwner',
                        's', ('org.gpuswap1',))[0]


@case(daemon=False)
def watchdog_pings_when_systemd_asks(sim):
    sim.start_daemon(env={'WATCHDOG_USEC': '200000'})
    assert sim.wait_for_notification('WATCHDOG=1', timeout=5)


def context_switches(pid):
    """How often the threads of pid have been scheduled, all counted together."""
    total = 0
    for task in os.listdir(f'/proc/{pid}/task'):
        with open(f'/proc/{pid}/task/{task}/status') as f:
            total += sum(int(line.split()[1]) for line in f if 'ctxt_switches:' in line)
    return total


def wait_until_quiet(pid, quiet=0.5, timeout=20):
    """Waits until no thread of pid has run for `quiet` seconds: the start-up work is done."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        before = context_switches(pid)
        time.sleep(quiet)
        if context_switches(pid) == before:
            return
    raise AssertionError(f'gpuswapd never went quiet for {quiet} s')


@case()
def idle_daemon_sleeps_in_the_kernel(sim):
    """An idle daemon is parked in epoll_wait: in five seconds no thread of it is scheduled,
    and five seconds of strace count no call but the one its attach restarts."""
    wait_until_quiet(sim.daemon.pid)
    switches = context_switches(sim.daemon.pid)
    time.sleep(5)
    woken = context_switches(sim.daemon.pid) - switches
    print(f'idle daemon: scheduled {woken} times in 5 s', flush=True)
    assert woken == 0
    trace = subprocess.run(['timeout', '--signal=INT', '5', 'strace', '-f', '-c', '-p', str(sim.daemon.pid)],
                           capture_output=True, text=True)
    total = re.search(r'^100\.00\s+\S+\s+\S+\s+(\d+)\s+(\d+)?\s*total$', trace.stderr, re.M)
    assert total, f'no summary from strace: {trace.stderr}'
    calls = int(total.group(1))
    print(f'idle daemon: {calls} system calls in 5 s', flush=True)
    # strace's attach interrupts the parked epoll_wait once; it restarts, that is all.
    assert calls <= 1, trace.stderr


def interface_members(xml_text, interface):
    root = ElementTree.fromstring(xml_text)
    node = root.find(f"interface[@name='{interface}']")
    return sorted(child.get('name') for child in node if child.tag in ('method', 'property', 'signal'))


@case()
def introspection_shows_the_documented_interface(sim):
    tree = subprocess.run(['busctl', '--address=' + sim.bus_address, 'tree', '--list', 'org.gpuswap1'],
                          capture_output=True, text=True, check=True).stdout.split()
    assert '/org/gpuswap1' in tree and '/org/gpuswap1/device/pci_0000_03_00_0' in tree, tree
    for path, interface, xml_file in (('/org/gpuswap1', 'org.gpuswap1.Manager', 'org.gpuswap1.Manager.xml'),
                                      ('/org/gpuswap1/device/pci_0000_03_00_0', 'org.gpuswap1.Device',
                                       'org.gpuswap1.Device.xml')):
        live = sim.bus.call('org.gpuswap1', path, 'org.freedesktop.DBus.Introspectable', 'Introspect')[0]
        with open(os.path.join(SOURCE_ROOT, 'dbus', xml_file)) as f:
            documented = interface_members(f.read(), interface)
        assert interface_members(live, interface) == documented, (interface_members(live, interface), documented)
        shown = subprocess.run(['busctl', '--address=' + sim.bus_address, 'introspect', 'org.gpuswap1', path,
                                interface], capture_output=True, text=True, check=True).stdout
        for member in documented:
            assert re.search(rf'^\.{member}\s', shown, re.M), (member, shown)


if __name__ == '__main__':
    main()
