#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""A real libvirtd calls gpuswap-hook: `virsh start` hands the simulated GPU over before
QEMU starts, `virsh destroy` gives it back.

Inside the harness's namespaces, the system bus listens at its default path (the hook
gets no bus address from libvirt). libvirtd runs in a mount namespace of its own that sees
the real /sys read-only and private /etc/libvirt, /run, /var/{lib,cache,log}, passwd and
group; the test domain is TCG with no disk, no network and no <hostdev> (libvirt would act
on the real device at that address)."""
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'sim'))
from simharness import SOURCE_ROOT, Manager, case, database_with, main, skip  # noqa: E402

GPU, AUDIO = '0000:03:00.0', '0000:03:00.1'
HOOK = os.environ.get('GPUSWAP_HOOK') or os.path.join(SOURCE_ROOT, '_build', 'plain', 'client', 'gpuswap-hook')
CONFIG = {'vms': {'win11': {'devices': [GPU, AUDIO], 'bars': {GPU: {'0': '8G'}}},
                  'broken': {'devices': [GPU, '0000:09:00.0']}}}
NEEDED = ('libvirtd', 'virsh', 'qemu-system-x86_64')

DOMAIN = '''<domain type='qemu'>
  <name>{name}</name>
  <memory unit='MiB'>64</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type></os>
  <on_crash>destroy</on_crash>
  {metadata}
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <serial type='file'><source path='{work}/{name}.serial'/><target port='0'/></serial>
    <video><model type='none'/></video>
    <memballoon model='none'/>
  </devices>
</domain>'''

# The first process of libvirtd's own mount and PID namespaces: it stays there as PID 1,
# reaping what libvirt daemonizes (QEMU's capability probes), and runs libvirtd.
SETUP = r'''
set -e
W=$1
# The harness hid /sys behind an empty tmpfs; libvirtd needs the real one, read-only.
umount -l /sys
mount --bind /sys /sys
mount -o remount,bind,ro /sys
mount --bind /proc/sys /proc/sys
mount -o remount,bind,ro /proc/sys
for d in /var/lib /var/cache /var/log; do mount -t tmpfs -o size=16m,mode=755 libvirt-private "$d"; done
mkdir -p /var/lib/libvirt /var/cache/libvirt /var/log/libvirt /run/libvirt
mount --bind "$W/etc-libvirt" /etc/libvirt
mount --bind "$W/passwd" /etc/passwd
mount --bind "$W/group" /etc/group
cd /
libvirtd -f "$W/libvirtd.conf" &
wait
'''


class Libvirt:
    def __init__(self, sim):
        self.sim = sim
        self.work = os.path.join(sim.work, 'libvirt')
        etc = os.path.join(self.work, 'etc-libvirt')
        os.makedirs(os.path.join(etc, 'hooks', 'qemu.d'))
        with open(os.path.join(etc, 'qemu.conf'), 'w') as f:
            f.write('cgroup_controllers = [ ]\nstdio_handler = "file"\nhugetlbfs_mount = [ ]\n')
        # Installed as meson installs it: one link in qemu.d.
        os.symlink(HOOK, os.path.join(etc, 'hooks', 'qemu.d', 'gpuswap'))
        with open(os.path.join(self.work, 'libvirtd.conf'), 'w') as f:
            f.write(f'log_outputs="3:file:{self.work}/libvirtd.log"\n')
        self._users()
        self.daemon = subprocess.Popen(['unshare', '--mount', '--pid', '--fork', '--mount-proc', '--kill-child',
                                        '--propagation', 'private', 'bash', '-c', SETUP, 'setup', self.work], stdout=open(os.path.join(self.work, 'libvirtd.out'), 'w'),
                                       stderr=subprocess.STDOUT)
        sim.processes.append(self.daemon)
        deadline = time.monotonic() + 30
        while self.virsh('uri').returncode != 0:
            if self.daemon.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError('libvirtd did not start: ' + open(os.path.join(self.work, 'libvirtd.out')).read())
            time.sleep(0.1)

    def _users(self):
        # The qemu driver looks up its default user libvirt-qemu before reading qemu.conf.
        database_with('/etc/passwd', os.path.join(self.work, 'passwd'),
                      ['libvirt-qemu:x:64055:64055:Libvirt Qemu:/var/lib/libvirt:/usr/sbin/nologin'])
        database_with('/etc/group', os.path.join(self.work, 'group'), ['libvirt-qemu:x:64055:'])

    def virsh(self, *args, timeout=60):
        return subprocess.run(['virsh', '-q', '-c', 'qemu:///system', *args], capture_output=True, text=True,
                              timeout=timeout)

    def define(self, name, profile=None):
        """profile: settings for the gpuswap profile in the domain's <metadata>."""
        metadata = '' if profile is None else \
            f'<metadata><g:profile xmlns:g="https://gpuswap.org/xmlns/profile/1">{profile}</g:profile></metadata>'
        path = os.path.join(self.work, name + '.xml')
        with open(path, 'w') as f:
            f.write(DOMAIN.format(name=name, work=self.work, metadata=metadata))
        result = self.virsh('define', path)
        assert result.returncode == 0, result.stderr

    def stop(self):
        for name in self.virsh('list', '--name').stdout.split():
            self.virsh('destroy', name)
        self.daemon.terminate()
        try:
            self.daemon.wait(10)
        except subprocess.TimeoutExpired:
            self.daemon.kill()
            self.daemon.wait()


def with_libvirt(test):
    def run(sim):
        missing = [program for program in NEEDED if shutil.which(program) is None]
        if missing:
            skip(f'{", ".join(missing)} missing (Debian: libvirt-daemon, libvirt-daemon-driver-qemu, '
                 f'libvirt-clients, qemu-system-x86)')
        if not os.path.isdir('/etc/libvirt'):
            skip('/etc/libvirt is missing (it comes with libvirt-daemon): nothing to mount over')
        libvirt = Libvirt(sim)
        try:
            test(sim, libvirt)
        except BaseException:
            for name in ('libvirtd.out', 'libvirtd.log'):
                with open(os.path.join(libvirt.work, name), errors='replace') as f:
                    print(f'----- {name} -----\n{f.read()[-4000:]}', file=sys.stderr)
            raise
        finally:
            libvirt.stop()
    run.__name__ = test.__name__
    return run


@case(config=CONFIG, default_bus_path=True)
@with_libvirt
def virsh_start_hands_over_and_destroy_gives_back(sim, libvirt):
    before = sim.snapshot()
    libvirt.define('win11')
    result = libvirt.virsh('start', 'win11')
    assert result.returncode == 0, result.stderr
    assert libvirt.virsh('domstate', 'win11').stdout.strip() == 'running'
    gpu = sim.device_state(GPU)
    assert gpu['driver'] == 'vfio-pci' and gpu['bar_sizes'][0] == 8 << 30, gpu
    assert sim.device_state(AUDIO)['driver'] == 'vfio-pci'
    assert Manager(sim.bus).get('PreparedVMs') == ['win11']
    result = libvirt.virsh('destroy', 'win11')
    assert result.returncode == 0, result.stderr
    assert sim.bus.wait_until(lambda: sim.snapshot() == before, timeout=30), sim.snapshot()
    assert sim.unit_state() == 'active'
    assert Manager(sim.bus).get('PreparedVMs') == []


@case(config=CONFIG, default_bus_path=True)
@with_libvirt
def a_failing_prepare_stops_virsh_start(sim, libvirt):
    before = sim.snapshot()
    libvirt.define('broken')
    result = libvirt.virsh('start', 'broken')
    assert result.returncode != 0, result.stdout
    assert 'there is no PCI device 0000:09:00.0' in result.stderr, result.stderr
    assert libvirt.virsh('domstate', 'broken').stdout.strip() == 'shut off'
    assert sim.snapshot() == before and sim.kernel_state()['writes'] == []


@case(config=CONFIG, default_bus_path=True)
@with_libvirt
def virsh_define_keeps_a_profile_in_metadata_and_the_hook_uses_it(sim, libvirt):
    """virsh define (as virsh edit and virt-manager's XML tab save it) keeps the profile in
    <metadata>; at virsh start the hook passes it and gpuswapd reads it: a malformed one
    stops the start with the configuration's kind of message, a valid one is the VM's
    profile (its devices come from hostdevs, and these test domains may have none: libvirt
    here sees this machine's real PCI devices)."""
    before = sim.snapshot()
    libvirt.define('meta-bad', '<g:display_manager>sometimes</g:display_manager>')
    dumped = libvirt.virsh('dumpxml', 'meta-bad').stdout
    assert 'https://gpuswap.org/xmlns/profile/1' in dumped and 'sometimes' in dumped, dumped
    result = libvirt.virsh('start', 'meta-bad')
    assert result.returncode != 0, result.stdout
    assert 'domain meta-bad <metadata>: display_manager: "sometimes" is not one of "restart", "keep", "stop"' in result.stderr, \
        result.stderr
    libvirt.define('meta-good', '<g:holders>ignore</g:holders>')
    result = libvirt.virsh('start', 'meta-good')
    assert result.returncode != 0 and 'profile meta-good lists no devices' in result.stderr, result
    assert libvirt.virsh('domstate', 'meta-good').stdout.strip() == 'shut off'
    assert sim.snapshot() == before and sim.kernel_state()['writes'] == []


@case(config=CONFIG, default_bus_path=True)
@with_libvirt
def a_vm_without_a_profile_starts_normally(sim, libvirt):
    libvirt.define('plain-vm')
    result = libvirt.virsh('start', 'plain-vm')
    assert result.returncode == 0, result.stderr
    assert libvirt.virsh('domstate', 'plain-vm').stdout.strip() == 'running'
    assert sim.kernel_state()['writes'] == []
    assert libvirt.virsh('destroy', 'plain-vm').returncode == 0


if __name__ == '__main__':
    main()
