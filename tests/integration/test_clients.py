#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""gpuswapctl and gpuswap-hook against gpuswapd on the simulated machine."""
import json
import os
import pty
import re
import shlex
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'sim'))
from simharness import SOURCE_ROOT, case, main  # noqa: E402

GPU, AUDIO = '0000:03:00.0', '0000:03:00.1'
BUILD = os.path.join(SOURCE_ROOT, '_build', 'plain', 'client')
CTL = os.environ.get('GPUSWAPCTL') or os.path.join(BUILD, 'gpuswapctl')
HOOK = os.environ.get('GPUSWAP_HOOK') or os.path.join(BUILD, 'gpuswap-hook')
CONFIG = {'vms': {'win11': {'devices': [GPU, AUDIO], 'bars': {GPU: {'0': '8G'}}}, 'from-xml': {}}}
NOBODY_LISTENS = 'unix:path=/nonexistent/system_bus_socket'

DOMAIN = '''<domain type='kvm'><name>{name}</name><devices>{hostdevs}</devices></domain>'''
HOSTDEV = '''<hostdev mode='subsystem' type='pci' managed='yes'><source>
  <address domain='0x0000' bus='0x03' slot='0x00' function='0x{function}'/></source></hostdev>'''


def domain(name, functions=(0, 1)):
    return DOMAIN.format(name=name, hostdevs=''.join(HOSTDEV.format(function=f) for f in functions))


def run(sim, argv, address=None, stdin=None):
    # libvirt gives hooks only PATH, HOME and LC_ALL; the bus address stands in for the
    # default system bus socket here.
    env = {'PATH': os.environ['PATH'], 'HOME': '/root', 'LC_ALL': 'C',
           'DBUS_SYSTEM_BUS_ADDRESS': address or sim.bus_address}
    return subprocess.run(argv, env=env, input=stdin, capture_output=True, text=True, timeout=120)


def ctl(sim, *args, address=None):
    return run(sim, [CTL, *args], address)


def wait_for(condition, timeout=10):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, 'timed out'
        time.sleep(0.05)


def ctl_on_terminal(sim, *args, env=None):
    """gpuswapctl with its output on a pseudo-terminal: what a user at a shell sees."""
    environment = {'PATH': os.environ['PATH'], 'DBUS_SYSTEM_BUS_ADDRESS': sim.bus_address, 'TERM': 'xterm'}
    environment.update(env or {})
    master, slave = pty.openpty()
    process = subprocess.Popen([CTL, *args], env=environment, stdin=subprocess.DEVNULL, stdout=slave,
                               stderr=slave, close_fds=True)
    os.close(slave)
    output = b''
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:   # EIO: the other side is closed
            break
        if not chunk:
            break
        output += chunk
    os.close(master)
    return process.wait(timeout=60), output.decode(errors='replace')


def hook(sim, vm, operation, phase, xml='', address=None):
    return run(sim, [HOOK, vm, operation, phase, '-'], address, stdin=xml)


@case(config=CONFIG)
def status_json_lists_the_gpus(sim):
    result = ctl(sim, 'status', '--json')
    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)
    assert status['profiles'] == ['from-xml', 'win11'] and status['operation'] == ''
    devices = {d['address']: d for d in status['devices']}
    assert devices[GPU]['driver'] == 'amdgpu' and devices[GPU]['iommu_group'] == 14
    assert devices[GPU]['bars'][0] == {'index': 0, 'size': 16 << 30, 'supported': 0x7f00}
    assert devices['0000:00:02.0']['boot_vga'] is True
    text = ctl(sim, 'status').stdout
    assert '0000:03:00.0  1002:73bf VGA    amdgpu' in text and '0:16G(256M-16G)' in text, text


STEP = re.compile(r'^\[(\d+)/(\d+)\] (.*) \((\d+\.\d\d) s\)$')


@case(config=CONFIG)
def prepare_and_release_show_each_step_with_its_time(sim):
    before = sim.snapshot()
    result = ctl(sim, 'prepare', 'win11')
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    steps = [STEP.match(line) for line in lines[:-1]]
    assert all(steps), lines
    assert [int(m.group(1)) for m in steps] == list(range(1, len(steps) + 1)), lines
    assert steps[0].group(3) == 'stop display-manager.service' and lines[-1] == f'win11: done in {len(steps)} steps', lines
    assert sim.device_state(GPU)['driver'] == 'vfio-pci'
    assert ctl(sim, 'release', 'win11', '--dry-run').stdout.startswith('would 1. stop display-manager.service')
    assert ctl(sim, 'release', 'win11').returncode == 0
    assert sim.snapshot() == before


@case(config={'vms': {'win11': {'devices': [GPU, AUDIO]},
                      'onboard-audio': {'devices': ['0000:00:1f.3'], 'display_manager': 'keep'}}})
def progress_shows_only_the_callers_own_operation(sim):
    """A call queued behind another VM's hand-over does not print that hand-over's steps."""
    holder = sim.hold('dri/card1')   # win11's prepare waits for the compositor to let go
    env = {'PATH': os.environ['PATH'], 'DBUS_SYSTEM_BUS_ADDRESS': sim.bus_address}
    first = subprocess.Popen([CTL, 'prepare', 'win11'], env=env, stdout=subprocess.PIPE, text=True)
    sim.processes.append(first)
    wait_for(lambda: 'prepare:win11' in ctl(sim, 'status', '--json').stdout)
    second = subprocess.Popen([CTL, 'prepare', 'onboard-audio'], env=env, stdout=subprocess.PIPE, text=True)
    sim.processes.append(second)
    time.sleep(0.3)   # the second call is queued while the first waits
    holder.kill()
    first_out, _ = first.communicate(timeout=60)
    second_out, _ = second.communicate(timeout=60)
    assert first.returncode == 0 and second.returncode == 0, (first_out, second_out)
    assert '0000:03:00' in first_out and '0000:00:1f.3' not in first_out, first_out
    assert '0000:00:1f.3' in second_out and '0000:03:00' not in second_out, second_out
    assert 'display-manager' not in second_out, second_out


@case(config=CONFIG)
def rebind_resize_and_diagnose(sim):
    result = ctl(sim, 'rebind', GPU, 'vfio-pci')
    assert result.returncode == 0 and 'was on amdgpu' in result.stdout, result
    result = ctl(sim, 'resize-bar', GPU, '0', '4G')
    assert result.returncode == 0 and 'BAR 0: 16G -> 4G' in result.stdout, result
    assert ctl(sim, 'resize-bar', GPU, '0', str(8 << 30)).returncode == 0
    assert sim.device_state(GPU)['bar_sizes'][0] == 8 << 30
    result = ctl(sim, 'resize-bar', GPU, '0', '3G')
    assert result.returncode == 2, result
    assert ctl(sim, 'rebind', GPU, '--default').returncode == 0
    assert sim.device_state(GPU)['driver'] == 'amdgpu'
    findings = json.loads(ctl(sim, 'diagnose', 'from-xml', '--json').stdout)
    assert [f['code'] for f in findings] == ['hook-missing', 'devices-from-domain'], findings


@case(config=CONFIG)
def exit_codes_tell_what_went_wrong(sim):
    assert ctl(sim, 'prepare', 'nope').returncode == 1
    assert ctl(sim, '--help').returncode == 0
    result = ctl(sim, 'status', address=NOBODY_LISTENS)
    assert result.returncode == 4, result
    sim.stop_daemon()
    assert ctl(sim, 'status').returncode == 4


@case(config=CONFIG, daemon=False)
def usage_errors_exit_2_with_one_line_before_any_bus(sim):
    """With no bus to talk to, a bad command line is still a usage error: one line saying what
    is wrong and where help is, not the whole usage text."""
    for args, problem in ((['foo'], 'unknown command "foo"'), (['-j', 'foo'], 'unknown command "foo"'),
                          (['-x', 'status'], 'unknown option -x'), (['prepare'], 'prepare wants VM'),
                          (['status', '--force'], '--force does not apply to status'),
                          (['rebind', '3:00.0', 'vfio-pci'], '"3:00.0" is not a PCI address'),
                          (['resize-bar', GPU, '0', '3G'], '"3G" is not a size')):
        result = ctl(sim, *args, address=NOBODY_LISTENS)
        assert result.returncode == 2 and result.stdout == '', (args, result)
        lines = result.stderr.splitlines()
        assert len(lines) == 2 and problem in lines[0] and lines[1].startswith("Try 'gpuswapctl "), (args, lines)
    result = ctl(sim, 'prepare', '--help', address=NOBODY_LISTENS)
    assert result.returncode == 0 and result.stdout.startswith('Usage: gpuswapctl [OPTIONS] prepare VM\n'), result
    assert '--dry-run' in result.stdout and '--force' not in result.stdout, result.stdout
    version = ctl(sim, '--version', address=NOBODY_LISTENS)
    assert version.returncode == 0 and version.stdout == f"gpuswapctl {os.environ.get('GPUSWAP_VERSION', '')}\n", version


@case(config=CONFIG)
def every_command_prints_one_json_document(sim):
    def document(*args, status=0):
        result = ctl(sim, '--json', *args)
        assert result.returncode == status, (args, result)
        return json.loads(result.stdout)   # the whole of stdout, nothing else
    prepared = document('prepare', 'win11')
    assert prepared['vm'] == 'win11' and prepared['operation'] == 'prepare' and not prepared['dry_run']
    assert prepared['steps'][0]['description'] == 'stop display-manager.service', prepared
    assert all(isinstance(step['seconds'], float) for step in prepared['steps']), prepared
    assert document('release', 'win11', '--dry-run')['steps'][0] == 'stop display-manager.service'
    assert len(document('release', 'win11')['steps']) > 1
    assert document('rebind', AUDIO, 'vfio-pci') == {'address': AUDIO, 'driver': 'vfio-pci', 'dry_run': False,
                                                     'previous_driver': 'snd_hda_intel'}
    assert document('rebind', '--default', AUDIO)['previous_driver'] == 'vfio-pci'
    assert document('rebind', GPU, 'vfio-pci')['previous_driver'] == 'amdgpu'
    resized = document('resize-bar', GPU, '0', '8G')
    assert resized['previous_size'] == 16 << 30 and resized['size'] == 8 << 30, resized
    assert document('reload') == {'reloaded': True}
    assert isinstance(document('diagnose'), list)
    assert document('status')['profiles'] == ['from-xml', 'win11']
    failed = document('prepare', 'nope', status=1)
    assert failed['error']['name'] == 'org.gpuswap1.Error.NoSuchProfile' and 'nope' in failed['error']['message'], failed
    assert document('check-config', sim.config_path)['valid'] is True


@case(config=CONFIG)
def colour_only_on_a_terminal_and_never_with_no_color(sim):
    status, output = ctl_on_terminal(sim, 'diagnose', 'from-xml')
    assert '\033[' in output, repr(output)
    status, output = ctl_on_terminal(sim, 'diagnose', 'from-xml', env={'NO_COLOR': '1'})
    assert '\033[' not in output and 'hook-missing' in output, repr(output)
    status, output = ctl_on_terminal(sim, 'status', env={'TERM': 'dumb'})
    assert status == 0 and '\033[' not in output, repr(output)
    assert '\033[' not in ctl(sim, 'diagnose', 'from-xml').stdout
    status, output = ctl_on_terminal(sim, 'prepare', 'win11')
    assert status == 0 and '\033[32mdone\033[0m' in output, repr(output)


@case(config=CONFIG)
def status_names_devices_from_the_hardware_database(sim):
    env = dict(sim.preload_env(), DBUS_SYSTEM_BUS_ADDRESS=sim.bus_address)
    result = subprocess.run([CTL, 'status'], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    line = next(line for line in result.stdout.splitlines() if line.startswith(GPU))
    assert line.endswith('Advanced Micro Devices, Inc. [AMD/ATI] Navi 21 [Radeon RX 6800/6800 XT / 6900 XT]'), line
    status = json.loads(subprocess.run([CTL, 'status', '--json'], env=env, capture_output=True, text=True,
                                       timeout=60).stdout)
    devices = {d['address']: d for d in status['devices']}
    assert devices['0000:00:02.0']['model_name'] == 'Raptor Lake-S GT1 [UHD Graphics 770]'


@case(config=CONFIG)
def addresses_in_lspci_and_virsh_form(sim):
    result = ctl(sim, 'rebind', '03:00.1', 'vfio-pci')
    assert result.returncode == 0 and f'{AUDIO}: was on snd_hda_intel' in result.stdout, result
    result = ctl(sim, 'rebind', '--default', 'pci_0000_03_00_1')
    assert result.returncode == 0 and 'was on vfio-pci' in result.stdout, result
    assert ctl(sim, 'rebind', '03:00.0', 'vfio-pci').returncode == 0
    assert ctl(sim, 'resize-bar', 'pci_0000_03_00_0', '0', '4G').returncode == 0
    assert sim.device_state(GPU)['bar_sizes'][0] == 4 << 30
    assert ctl(sim, 'rebind', '--default', '0000:03:00.0').returncode == 0
    sim.write_config({'vms': {'win11': {'devices': ['03:00.0', 'pci_0000_03_00_1']}}})
    assert ctl(sim, 'reload').returncode == 0
    assert ctl(sim, 'prepare', 'win11').returncode == 0
    assert sim.device_state(AUDIO)['driver'] == 'vfio-pci'


@case(config=CONFIG)
def check_config_says_what_reload_would_without_the_daemon(sim):
    result = ctl(sim, 'check-config', sim.config_path, address=NOBODY_LISTENS)
    assert result.returncode == 0 and result.stdout == f'{sim.config_path}: valid, 2 VM profile(s)\n', result
    sim.write_config('{"vms": {"win11": {"display_manager": "sometimes"}}}')
    checked = ctl(sim, 'check-config', sim.config_path, address=NOBODY_LISTENS)
    reloaded = ctl(sim, 'reload')
    assert checked.returncode == 1 and reloaded.returncode == 1, (checked, reloaded)
    message = checked.stderr.strip()
    assert message.endswith('vms/win11/display_manager: "sometimes" is not one of "restart", "keep", "stop"'), message
    assert message in reloaded.stderr, (message, reloaded.stderr)
    daemon = subprocess.run([os.environ['GPUSWAPD'], '--check-config=' + sim.config_path], capture_output=True, text=True)
    assert daemon.returncode == 1 and daemon.stderr.strip() == message, daemon
    missing = ctl(sim, 'check-config', '/nonexistent/gpuswapd.json', address=NOBODY_LISTENS)
    assert missing.returncode == 1 and 'No such file or directory' in missing.stderr, missing


@case(config=CONFIG)
def every_log_line_of_an_operation_names_it(sim):
    """journalctl GPUSWAP_VM=win11 finds the whole hand-over: the start, each step with its
    number, its time, and the end, which carry MESSAGE_IDs of the installed catalog."""
    assert ctl(sim, 'prepare', 'win11').returncode == 0
    lines = sim.log('gpuswapd.log').splitlines()
    first = next(i for i, line in enumerate(lines) if 'prepare:win11 started' in line)
    last = next(i for i, line in enumerate(lines) if 'prepare:win11 done in' in line)
    operation = lines[first:last + 1]
    assert all('OPERATION=prepare:win11 VM=win11' in line for line in operation), operation
    assert 'MESSAGE_ID=22828cc8c2274f14b728ae6067d5783d' in operation[0], operation[0]
    assert 'MESSAGE_ID=eb8cc69534be4841a7d6fcc16ae5d629' in operation[-1], operation[-1]
    done = [line for line in operation if ': done after ' in line]
    assert len(done) >= 8 and all(re.search(r'STEP_USEC=\d+ .*STEP=\d+', line) for line in done), done
    assert re.search(r'done after [0-9.]+ s: stop display-manager.service', done[0]), done[0]
    # Each function's driver changes twice, and is named twice: not again when the unbind
    # removes the card's DRM or sound nodes.
    moved = {re.search(r'DEVICE=(\S+)', line).group(1) for line in operation if ' is now on ' in line}
    assert len(moved) == 2, operation
    for device in moved:
        drivers = [re.search(r' is now on (.+?) DEVICE=', line).group(1)
                   for line in operation if f'info: {device} is now on ' in line]
        assert drivers == ['no driver', 'vfio-pci'], (device, drivers)
    catalog = open(os.path.join(SOURCE_ROOT, 'systemd', 'gpuswapd.catalog')).read()
    for message_id in ('22828cc8c2274f14b728ae6067d5783d', 'eb8cc69534be4841a7d6fcc16ae5d629',
                       'dc4fb2cd579a47cf9a6cf04b8b7345ab'):
        assert f'-- {message_id}' in catalog
    sim.write_config('{"vms": {"win11": {"devices": ["0000:03:00.0"]}}}')   # the audio function is missing
    assert ctl(sim, 'reload').returncode == 0
    assert ctl(sim, 'release', 'win11').returncode == 0
    assert ctl(sim, 'prepare', 'win11').returncode == 1
    failed = next(line for line in sim.log('gpuswapd.log').splitlines() if 'prepare:win11 failed after' in line)
    assert 'MESSAGE_ID=dc4fb2cd579a47cf9a6cf04b8b7345ab' in failed and 'ERROR=org.gpuswap1.Error.' in failed, failed


@case(config=CONFIG)
def monitor_follows_the_operations(sim):
    env = {'PATH': os.environ['PATH'], 'DBUS_SYSTEM_BUS_ADDRESS': sim.bus_address}
    monitor = subprocess.Popen([CTL, 'monitor'], env=env, stdout=subprocess.PIPE, text=True)
    sim.processes.append(monitor)
    # The prepare gives the monitor time to subscribe; the release is what it must show whole.
    assert ctl(sim, 'prepare', 'win11').returncode == 0
    assert ctl(sim, 'release', 'win11').returncode == 0
    lines = []
    while not any(line == 'release:win11 finished' for line in lines):
        lines.append(monitor.stdout.readline().strip())
    monitor.terminate()
    release = [line for line in lines if line.startswith('release:win11')]
    assert release[0] == 'release:win11 [1/12] stop display-manager.service', lines
    assert len(release) == 13, release


@case(config=CONFIG)
def hook_prepares_and_releases_quietly(sim):
    before = sim.snapshot()
    result = hook(sim, 'win11', 'prepare', 'begin', domain('win11'))
    assert (result.returncode, result.stdout, result.stderr) == (0, '', ''), result
    assert sim.device_state(GPU)['driver'] == 'vfio-pci'
    for phase in (('start', 'begin'), ('started', 'begin'), ('stopped', 'end')):
        assert hook(sim, 'win11', *phase, domain('win11')).returncode == 0
    result = hook(sim, 'win11', 'release', 'end', domain('win11'))
    assert (result.returncode, result.stdout, result.stderr) == (0, '', ''), result
    assert sim.snapshot() == before


@case(config=CONFIG)
def hook_takes_devices_from_the_domain_xml(sim):
    assert hook(sim, 'from-xml', 'prepare', 'begin', domain('from-xml')).returncode == 0
    assert sim.device_state(GPU)['driver'] == 'vfio-pci' and sim.device_state(AUDIO)['driver'] == 'vfio-pci'
    assert hook(sim, 'from-xml', 'release', 'end', domain('from-xml')).returncode == 0
    assert sim.device_state(GPU)['driver'] == 'amdgpu'


METADATA = '<metadata><g:profile xmlns:g="https://gpuswap.org/xmlns/profile/1">{}</g:profile></metadata>'


def domain_with_metadata(name, settings):
    return domain(name).replace('<devices>', METADATA.format(settings) + '<devices>')


@case(config=CONFIG)
def hook_takes_the_profile_from_the_domains_metadata(sim):
    """No JSON profile: the domain's <metadata> configures the hand-over, its hostdevs name
    the devices."""
    xml = domain_with_metadata('zero-config', '<g:display_manager>keep</g:display_manager>'
                               '<g:bar device="pci_0000_03_00_0" index="0" size="4G"/>')
    result = hook(sim, 'zero-config', 'prepare', 'begin', xml)
    assert result.returncode == 0, result.stderr
    assert sim.device_state(GPU)['driver'] == 'vfio-pci' and sim.device_state(GPU)['bar_sizes'][0] == 4 << 30
    assert 'stop display-manager.service' not in sim.log('gpuswapd.log')   # "keep"
    assert hook(sim, 'zero-config', 'release', 'end', xml).returncode == 0
    assert sim.device_state(GPU)['driver'] == 'amdgpu' and sim.device_state(GPU)['bar_sizes'][0] == 16 << 30


@case(config=CONFIG)
def the_json_profile_wins_over_metadata_and_bad_metadata_is_refused(sim):
    before = sim.snapshot()
    # win11's JSON profile asks for 8G; its metadata says 4G and "keep".
    xml = domain_with_metadata('win11', '<g:display_manager>keep</g:display_manager>'
                               f'<g:bar device="{GPU}" index="0" size="4G"/>')
    assert hook(sim, 'win11', 'prepare', 'begin', xml).returncode == 0
    assert sim.device_state(GPU)['bar_sizes'][0] == 8 << 30
    assert hook(sim, 'win11', 'release', 'end', xml).returncode == 0
    assert sim.snapshot() == before
    writes = len(sim.kernel_state()['writes'])
    bad = domain_with_metadata('zero-config', '<g:display_manager>sometimes</g:display_manager>')
    result = hook(sim, 'zero-config', 'prepare', 'begin', bad)
    assert result.returncode == 1, result
    assert result.stderr.strip() == ('gpuswap: domain zero-config <metadata>: display_manager: "sometimes" is not one of '
                                     '"restart", "keep", "stop"'), result.stderr
    assert sim.snapshot() == before and len(sim.kernel_state()['writes']) == writes


@case(config=CONFIG)
def hook_lets_vms_without_a_profile_start(sim):
    result = hook(sim, 'some-other-vm', 'prepare', 'begin', domain('some-other-vm'))
    assert (result.returncode, result.stdout, result.stderr) == (0, '', ''), result
    assert sim.kernel_state()['writes'] == []


@case(machine='shared-group-usb', config={'vms': {'gaming': {'devices': ['0000:0c:00.0', '0000:0c:00.1']}}})
def hook_vetoes_a_failing_prepare_with_one_line(sim):
    result = hook(sim, 'gaming', 'prepare', 'begin', domain('gaming'))
    assert result.returncode == 1 and result.stdout == '', result
    assert len(result.stderr.splitlines()) == 1 and '0000:0d:00.0 on xhci_hcd' in result.stderr, result.stderr
    # libvirt calls release after a vetoed start: it must succeed without steps.
    assert hook(sim, 'gaming', 'release', 'end', domain('gaming')).returncode == 0
    assert sim.kernel_state()['writes'] == []


@case(config=CONFIG)
def hook_without_the_daemon(sim):
    result = hook(sim, 'win11', 'prepare', 'begin', domain('win11'), address=NOBODY_LISTENS)
    assert result.returncode == 1 and 'cannot reach gpuswapd' in result.stderr, result
    result = hook(sim, 'plain-vm', 'prepare', 'begin', DOMAIN.format(name='plain-vm', hostdevs=''),
                  address=NOBODY_LISTENS)
    assert (result.returncode, result.stderr) == (0, ''), result
    assert hook(sim, 'win11', 'release', 'end', domain('win11'), address=NOBODY_LISTENS).returncode == 0
    started = time.monotonic()
    for phase in (('start', 'begin'), ('started', 'begin'), ('stopped', 'end'), ('migrate', 'begin')):
        result = hook(sim, 'win11', *phase, domain('win11'), address=NOBODY_LISTENS)
        assert (result.returncode, result.stdout, result.stderr) == (0, '', ''), (phase, result)
    print(f'four other phases answered in {(time.monotonic() - started) * 1000:.0f} ms', flush=True)


def completions(sim, line, address=None):
    """What bash completion offers for the last word of line, from the completion script as
    it is installed, asking the daemon on the simulated machine."""
    words = line.split(' ')
    script = (f'source {shlex.quote(os.path.join(SOURCE_ROOT, "completion", "gpuswapctl"))}; '
              f'COMP_WORDS=({" ".join(shlex.quote(w) for w in words)}); COMP_CWORD={len(words) - 1}; '
              '_gpuswapctl; printf "%s\\n" "${COMPREPLY[@]}"')
    result = run(sim, ['bash', '-c', script], address)
    assert result.returncode == 0 and result.stderr == '', result.stderr
    return sorted(result.stdout.split())


@case(config=CONFIG)
def bash_completion_offers_commands_profiles_devices_bars_and_sizes(sim):
    assert completions(sim, 'gpuswapctl ') == sorted(
        ['status', 'prepare', 'release', 'rebind', 'resize-bar', 'diagnose', 'monitor', 'reload', 'check-config'])
    assert completions(sim, 'gpuswapctl re') == ['rebind', 'release', 'reload', 'resize-bar']
    assert completions(sim, 'gpuswapctl prepare ') == ['from-xml', 'win11']
    assert completions(sim, 'gpuswapctl --json diagnose w') == ['win11']
    assert completions(sim, 'gpuswapctl prepare win11 ') == []
    assert completions(sim, 'gpuswapctl rebind ') == ['0000:00:02.0', GPU, AUDIO]
    assert completions(sim, 'gpuswapctl resize-bar 0000:03') == [GPU, AUDIO]
    assert 'vfio-pci' in completions(sim, 'gpuswapctl rebind ' + AUDIO + ' v')
    assert completions(sim, f'gpuswapctl resize-bar {GPU} ') == ['0', '2']
    assert completions(sim, f'gpuswapctl resize-bar {GPU} 0 ') == sorted(
        ['256M', '512M', '1G', '2G', '4G', '8G', '16G'])
    assert completions(sim, f'gpuswapctl resize-bar {GPU} 2 1') == ['128M', '16M']
    assert completions(sim, 'gpuswapctl rebind --d') == ['--default', '--dry-run']
    assert '--dry-run' in completions(sim, 'gpuswapctl release --') and \
        '--force' not in completions(sim, 'gpuswapctl release --')
    assert completions(sim, 'gpuswapctl status --') == ['--help', '--json', '--version']
    assert completions(sim, f'gpuswapctl check-config {SOURCE_ROOT}/gpuswapd.json.ex') == [
        f'{SOURCE_ROOT}/gpuswapd.json.example']
    # Without the daemon: nothing to offer, and nothing printed over the command line.
    for line in ('gpuswapctl prepare ', f'gpuswapctl resize-bar {GPU} ', f'gpuswapctl resize-bar {GPU} 0 '):
        assert completions(sim, line, address=NOBODY_LISTENS) == [], line


if __name__ == '__main__':
    main()
