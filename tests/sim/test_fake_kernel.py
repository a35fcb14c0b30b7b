#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""The simulated machine answers like the kernel and systemd that DESIGN.md measured.

These cases check the simulation itself, without gpuswapd: every other suite trusts it.
"""
import errno
import json
import os
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from simharness import PYTHON, HERE, Manager, case, main  # noqa: E402,F401

GPU = '0000:03:00.0'
AUDIO = '0000:03:00.1'
GIB = 1 << 30
MIB = 1 << 20


def errno_of(function, *args):
    try:
        function(*args)
    except OSError as e:
        return errno.errorcode[e.errno]
    return 'ok'


def read(sim, relative):
    with open(sim.sysfs(relative)) as f:
        return f.read()


class UdevListener:
    """udev_listener.py under the preload: the events a daemon's monitor would get."""

    def __init__(self, sim):
        self.process = subprocess.Popen([PYTHON, os.path.join(HERE, 'udev_listener.py')], env=sim.preload_env(),
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout.readline().strip() == 'LISTENING'
        self.events = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.process.stdout:
            self.events.append(json.loads(line))

    def wait_for(self, count, timeout=5):
        deadline = time.monotonic() + timeout
        while len(self.events) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        return [(e['action'], e['devpath'].rsplit('/', 1)[1], e['driver']) for e in self.events]

    def close(self):
        self.process.stdin.close()
        self.process.wait(5)


@case(daemon=False)
def driver_override_reads_back_like_the_kernel(sim):
    override = f'bus/pci/devices/{GPU}/driver_override'
    assert read(sim, override) == '(null)\n'
    sim.sysfs_write(override, 'vfio-pci')
    assert read(sim, override) == 'vfio-pci\n'
    fd = os.open(sim.sysfs(override), os.O_WRONLY | os.O_TRUNC)
    os.write(fd, b'')  # a zero-length write changes nothing
    os.close(fd)
    assert read(sim, override) == 'vfio-pci\n'
    sim.sysfs_write(override, '\n')  # clears it
    assert read(sim, override) == '(null)\n'


@case(daemon=False)
def unbind_and_probe_move_the_driver_and_its_nodes(sim):
    before = sim.device_state(GPU)
    assert before['driver'] == 'amdgpu' and before['drm_nodes'] == ['card1', 'renderD129'], before
    assert os.path.islink(sim.sysfs(f'bus/pci/drivers/amdgpu/{GPU}'))
    sim.sysfs_write(f'bus/pci/devices/{GPU}/driver_override', 'vfio-pci')
    sim.sysfs_write('bus/pci/drivers/amdgpu/unbind', GPU)
    state = sim.device_state(GPU)
    assert state['driver'] == '' and state['drm_nodes'] == [], state
    assert not os.path.lexists(sim.sysfs('class/drm/card1'))
    assert 'DRIVER=' not in read(sim, f'bus/pci/devices/{GPU}/uevent')
    sim.sysfs_write('bus/pci/drivers_probe', GPU)
    assert sim.device_state(GPU)['driver'] == 'vfio-pci'
    assert 'DRIVER=vfio-pci\n' in read(sim, f'bus/pci/devices/{GPU}/uevent')
    assert os.path.exists(sim.sysfs('class/vfio/14/dev')), 'the first vfio-pci device of a group makes its node'
    sim.sysfs_write('bus/pci/drivers/vfio-pci/unbind', GPU)
    assert not os.path.exists(sim.sysfs('class/vfio/14'))
    sim.sysfs_write(f'bus/pci/devices/{GPU}/driver_override', '\n')
    sim.sysfs_write('bus/pci/drivers_probe', GPU)
    after = sim.device_state(GPU)
    assert after['driver'] == 'amdgpu' and len(after['drm_nodes']) == 2, after


@case(daemon=False)
def writes_fail_with_the_kernels_errno(sim):
    write = sim.sysfs_write
    assert errno_of(write, 'bus/pci/drivers/vfio-pci/unbind', GPU) == 'ENODEV'   # not bound to it
    assert errno_of(write, 'bus/pci/drivers/amdgpu/bind', GPU) == 'EBUSY'        # already bound
    assert errno_of(write, 'bus/pci/drivers_probe', '0000:09:00.0') == 'ENODEV'  # no such device
    assert errno_of(write, f'bus/pci/devices/{GPU}/resource0_resize', '13') == 'EBUSY'  # a driver is bound
    write('bus/pci/drivers/amdgpu/unbind', GPU)
    assert errno_of(write, 'bus/pci/drivers/vfio-pci/bind', GPU) == 'ENODEV'     # no override, no ID match
    write(f'bus/pci/devices/{GPU}/driver_override', 'vfio-pci')
    assert errno_of(write, 'bus/pci/drivers/amdgpu/bind', GPU) == 'ENODEV'       # the override admits vfio-pci only
    assert errno_of(write, f'bus/pci/devices/{GPU}/resource0_resize', '20') == 'EINVAL'  # 1T: not supported
    assert errno_of(write, f'bus/pci/devices/{GPU}/resource0_resize', 'eight') == 'EINVAL'
    # An override naming an absent driver: the probe succeeds and binds nothing.
    write(f'bus/pci/devices/{GPU}/driver_override', 'no-such-driver')
    assert errno_of(write, 'bus/pci/drivers_probe', GPU) == 'ok'
    assert sim.device_state(GPU)['driver'] == ''
    writes = sim.kernel_state()['writes']
    assert [w['result'] for w in writes][:4] == ['ENODEV', 'EBUSY', 'ENODEV', 'EBUSY'], writes


@case(daemon=False)
def resize_changes_the_bar_while_unbound(sim):
    assert sim.device_state(GPU)['bar_sizes'][0] == 16 * GIB
    assert read(sim, f'bus/pci/devices/{GPU}/resource0_resize') == '0000000000007f00\n'
    assert read(sim, f'bus/pci/devices/{GPU}/resource2_resize') == '00000000000001fe\n'
    sim.sysfs_write('bus/pci/drivers/amdgpu/unbind', GPU)
    sim.sysfs_write(f'bus/pci/devices/{GPU}/resource0_resize', '13')
    assert sim.device_state(GPU)['bar_sizes'][0] == 8 * GIB
    sim.sysfs_write(f'bus/pci/devices/{GPU}/resource2_resize', '3')
    assert sim.device_state(GPU)['bar_sizes'][2] == 8 << 20


@case(daemon=False)
def uevents_come_in_the_kernels_order(sim):
    listener = UdevListener(sim)
    sim.sysfs_write(f'bus/pci/devices/{GPU}/driver_override', 'vfio-pci')
    sim.sysfs_write('bus/pci/drivers/amdgpu/unbind', GPU)
    sim.sysfs_write('bus/pci/drivers_probe', GPU)
    events = listener.wait_for(7)
    listener.close()
    # drm_dev_unregister(): the connectors first (drm_modeset_unregister_all), then the
    # render node, then the card (drivers/gpu/drm/drm_drv.c).
    assert events == [('remove', 'card1-HDMI-A-1', ''), ('remove', 'card1-DP-1', ''), ('remove', 'renderD129', ''),
                      ('remove', 'card1', ''), ('unbind', GPU, ''), ('add', '14', ''), ('bind', GPU, 'vfio-pci')], events
    seqnums = [e['seqnum'] for e in listener.events]
    assert seqnums == sorted(seqnums) and len(set(seqnums)) == len(seqnums), seqnums


@case(daemon=False, latency=True)
def writes_hold_the_writer_for_the_modelled_time(sim):
    """amdgpu's unbind takes 600 ms on machine (b); other attributes answer meanwhile."""
    done = threading.Event()
    started = time.monotonic()
    elapsed = []

    def unbind():
        sim.sysfs_write('bus/pci/drivers/amdgpu/unbind', GPU)
        elapsed.append(time.monotonic() - started)
        done.set()

    threading.Thread(target=unbind).start()
    time.sleep(0.05)
    assert read(sim, f'bus/pci/devices/{AUDIO}/driver_override') == '(null)\n'
    assert not done.is_set(), 'the unbind returned before its modelled time'
    assert done.wait(10)
    print(f'amdgpu unbind held the writer {elapsed[0] * 1000:.0f} ms (modelled: 600 ms)', flush=True)
    assert elapsed[0] >= 0.6
    assert sim.device_state(GPU)['driver'] == ''


@case(daemon=False)
def faults_refuse_hang_bind_the_wrong_driver_or_do_nothing(sim):
    unbind = 'bus/pci/drivers/amdgpu/unbind'
    snapshot = sim.snapshot()
    control = sim.kernel
    control(op='fault', on='unbind', effect='refuse', errno='EBUSY', times=1)
    assert errno_of(sim.sysfs_write, unbind, GPU) == 'EBUSY'
    assert sim.snapshot() == snapshot

    control(op='fault', on='unbind', effect='noop', times=1)
    assert errno_of(sim.sysfs_write, unbind, GPU) == 'ok'
    assert sim.snapshot() == snapshot, 'a silent no-op changes nothing'

    sim.sysfs_write(unbind, GPU)
    sim.sysfs_write(f'bus/pci/devices/{GPU}/driver_override', 'vfio-pci')
    control(op='fault', on='probe', device=GPU, effect='wrong-driver', bind_instead='amdgpu', times=1)
    sim.sysfs_write('bus/pci/drivers_probe', GPU)
    assert sim.device_state(GPU)['driver'] == 'amdgpu'

    sim.sysfs_write(unbind, GPU)
    control(op='fault', on='probe', device=GPU, effect='hang')
    result = []
    writer = threading.Thread(target=lambda: result.append(errno_of(sim.sysfs_write, 'bus/pci/drivers_probe', GPU)))
    writer.start()
    deadline = time.monotonic() + 5
    while sim.kernel_state()['hung'] < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert writer.is_alive() and sim.kernel_state()['hung'] == 1, 'the probe should hang'
    control(op='release-hung')
    writer.join(5)
    assert result == ['EIO'] and sim.device_state(GPU)['driver'] == ''


@case(daemon=False)
def a_bind_can_happen_without_its_uevent(sim):
    listener = UdevListener(sim)
    sim.kernel(op='fault', on='unbind', effect='no-event', times=1)
    sim.sysfs_write('bus/pci/drivers/amdgpu/unbind', GPU)
    assert sim.device_state(GPU)['driver'] == ''
    sim.sysfs_write('bus/pci/drivers/snd_hda_intel/unbind', AUDIO)
    events = listener.wait_for(3)
    listener.close()
    assert [e[1] for e in events] == ['controlC1', 'card1', AUDIO], events


@case(machine='b550-vega64', daemon=False)
def systemd_mock_loads_vfio_pci(sim):
    assert not os.path.exists(sim.sysfs('bus/pci/drivers/vfio-pci'))
    removed = sim.bus.subscribe('org.freedesktop.systemd1', 'org.freedesktop.systemd1.Manager', 'JobRemoved')
    job = sim.bus.call('org.freedesktop.systemd1', '/org/freedesktop/systemd1', 'org.freedesktop.systemd1.Manager',
                       'StartUnit', 'ss', ('modprobe@vfio_pci.service', 'replace'))[0]
    assert sim.bus.wait_until(lambda: any(args[1] == job for _, _, args in removed))
    assert [args[3] for _, _, args in removed] == ['done']
    assert os.path.isdir(sim.sysfs('bus/pci/drivers/vfio-pci'))
    assert os.path.exists(sim.sysfs('bus/pci/drivers/vfio-pci/bind'))
    # Type=oneshot without RemainAfterExit: inactive again once its job is done.
    assert sim.unit_state('modprobe@vfio_pci.service') == 'inactive'


@case(machine='b550-vega64', daemon=False)
def systemd_mock_modprobe_fails_yet_its_job_is_done(sim):
    listener = UdevListener(sim)
    mock = ('org.freedesktop.systemd1', '/org/freedesktop/systemd1', 'org.freedesktop.DBus.Mock')
    sim.bus.call(*mock, 'SetJobBehaviour', 'sssi', ('modprobe@vfio_pci.service', 'start', 'modprobe-fails', 0))
    removed = sim.bus.subscribe('org.freedesktop.systemd1', 'org.freedesktop.systemd1.Manager', 'JobRemoved')
    sim.bus.call('org.freedesktop.systemd1', '/org/freedesktop/systemd1', 'org.freedesktop.systemd1.Manager',
                 'StartUnit', 'ss', ('modprobe@vfio_pci.service', 'replace'))
    assert sim.bus.wait_until(lambda: removed)
    assert removed[0][2][3] == 'done'
    assert sim.unit_state('modprobe@vfio_pci.service') == 'inactive'
    assert not os.path.exists(sim.sysfs('bus/pci/drivers/vfio-pci'))
    # A module that loads is announced; this one was not.
    sim.kernel(op='load-driver', driver='vfio-pci')
    assert listener.wait_for(1)[-1] == ('add', 'vfio-pci', ''), listener.events
    assert listener.events[-1]['subsystem'] == 'drivers'
    listener.close()


def write_in_background(sim, relative, value):
    """Starts a write as the daemon's writer makes it; returns (thread, results)."""
    results = []
    thread = threading.Thread(target=lambda: results.append(errno_of(sim.sysfs_write, relative, value)), daemon=True)
    thread.start()
    return thread, results


def read_in_background(sim, relative):
    results = []
    thread = threading.Thread(target=lambda: results.append(read(sim, relative)), daemon=True)
    thread.start()
    return thread, results


@case(daemon=False)
def driver_override_read_waits_for_the_device_lock(sim):
    sim.kernel(op='fault', on='unbind', device=GPU, effect='hang')
    unbind, unbound = write_in_background(sim, 'bus/pci/drivers/amdgpu/unbind', GPU)
    time.sleep(0.2)
    reader, read_value = read_in_background(sim, f'bus/pci/devices/{GPU}/driver_override')
    reader.join(0.5)
    assert reader.is_alive() and not read_value, 'driver_override_show() must wait for the remove() in progress'
    # Other devices and the device's lock-free attributes answer meanwhile.
    assert read(sim, f'bus/pci/devices/{AUDIO}/driver_override') == '(null)\n'
    assert read(sim, f'bus/pci/devices/{GPU}/vendor') == '0x1002\n'
    sim.kernel(op='release-hung')
    unbind.join(5)
    reader.join(5)
    assert unbound == ['EIO'] and read_value == ['(null)\n'], (unbound, read_value)


@case(daemon=False)
def hda_unbind_waits_until_every_sound_file_is_closed(sim):
    listener = UdevListener(sim)
    control = sim.sound_control_node(AUDIO)
    stubborn = sim.hold(control)
    unbind, result = write_in_background(sim, 'bus/pci/drivers/snd_hda_intel/unbind', AUDIO)
    unbind.join(1.0)
    assert unbind.is_alive(), 'snd_card_free() waits for the open control file'
    # Disconnected first: the node is gone, the driver still bound.
    events = listener.wait_for(1)
    assert events[0] == ('remove', control.split('/')[1], ''), events
    assert os.path.lexists(sim.sysfs(f'bus/pci/devices/{AUDIO}/driver'))
    stubborn.kill()
    stubborn.wait()
    unbind.join(5)
    assert result == ['ok'], result
    assert listener.wait_for(3)[-1] == ('unbind', AUDIO, ''), listener.events
    listener.close()


@case(daemon=False)
def hda_unbind_goes_on_once_a_reacting_holder_closes(sim):
    reacting = sim.hold(sim.sound_control_node(AUDIO), reacts=True)
    unbind, result = write_in_background(sim, 'bus/pci/drivers/snd_hda_intel/unbind', AUDIO)
    unbind.join(5)
    assert result == ['ok'], result
    assert reacting.wait(5) == 0


@case(daemon=False)
def resize_needs_no_driver_and_room_in_the_window(sim):
    sim.sysfs_write('bus/pci/drivers/amdgpu/unbind', GPU)
    sim.kernel(op='window', device=GPU, size='8G')
    assert errno_of(sim.sysfs_write, f'bus/pci/devices/{GPU}/resource0_resize', '14') == 'ENOSPC'
    assert errno_of(sim.sysfs_write, f'bus/pci/devices/{GPU}/resource0_resize', '13') == 'ok'
    assert sim.device_state(GPU)['bar_sizes'][0] == 8 * GIB
    sim.sysfs_write(f'bus/pci/devices/{GPU}/driver_override', 'vfio-pci')
    sim.sysfs_write('bus/pci/drivers_probe', GPU)
    assert errno_of(sim.sysfs_write, f'bus/pci/devices/{GPU}/resource0_resize', '12') == 'EBUSY'


@case(daemon=False)
def amdgpu_probe_grows_bar0_to_what_fits(sim):
    sim.sysfs_write('bus/pci/drivers/amdgpu/unbind', GPU)
    sim.sysfs_write(f'bus/pci/devices/{GPU}/resource0_resize', '8')  # 256M
    sim.kernel(op='window', device=GPU, size='8G')
    sim.sysfs_write('bus/pci/drivers_probe', GPU)
    assert sim.device_state(GPU)['driver'] == 'amdgpu'
    assert sim.device_state(GPU)['bar_sizes'][0] == 8 * GIB


@case(daemon=False)
def bars_below_4g_have_no_room_to_grow(sim):
    sim.kernel(op='firmware-places-bars', device=GPU, below_4g=True)
    start = int(read(sim, f'bus/pci/devices/{GPU}/resource').split()[0], 16)
    assert start < 1 << 32 and sim.device_state(GPU)['bar_sizes'][0] == 256 * MIB
    sim.sysfs_write('bus/pci/drivers/amdgpu/unbind', GPU)
    assert errno_of(sim.sysfs_write, f'bus/pci/devices/{GPU}/resource0_resize', '9') == 'ENOSPC'


@case(daemon=False)
def connectors_come_and_go_with_the_card(sim):
    connector = f'bus/pci/devices/{GPU}/drm/card1/card1-DP-1'
    assert read(sim, connector + '/enabled').strip() == 'disabled'
    assert os.path.islink(sim.sysfs('class/drm/card1-DP-1'))
    sim.sysfs_write('bus/pci/drivers/amdgpu/unbind', GPU)
    assert not os.path.exists(sim.sysfs(connector)) and not os.path.lexists(sim.sysfs('class/drm/card1-DP-1'))


@case(daemon=False, units=[{'name': 'gdm.service', 'aliases': ['display-manager.service'], 'active': True,
                            'stop_ms': 200, 'start_ms': 100}])
def systemd_mock_jobs_take_time_fail_or_hang(sim):
    systemd = ('org.freedesktop.systemd1', '/org/freedesktop/systemd1', 'org.freedesktop.systemd1.Manager')
    removed = sim.bus.subscribe('org.freedesktop.systemd1', 'org.freedesktop.systemd1.Manager', 'JobRemoved')
    unit = sim.bus.call(*systemd, 'GetUnit', 's', ('display-manager.service',))[0]
    assert unit == '/org/freedesktop/systemd1/unit/gdm_2eservice', unit
    state = lambda: sim.bus.get('org.freedesktop.systemd1', unit, 'org.freedesktop.systemd1.Unit', 'ActiveState')
    sim.bus.call(*systemd, 'Subscribe')
    job = sim.bus.call(*systemd, 'StopUnit', 'ss', ('display-manager.service', 'replace'))[0]
    assert state() == 'deactivating'
    assert sim.bus.wait_until(lambda: removed)
    assert removed[0][2] == (removed[0][2][0], job, 'gdm.service', 'done'), removed
    assert state() == 'inactive'

    mock = ('org.freedesktop.systemd1', '/org/freedesktop/systemd1', 'org.freedesktop.DBus.Mock')
    sim.bus.call(*mock, 'SetJobBehaviour', 'sssi', ('display-manager.service', 'start', 'failed', 0))
    sim.bus.call(*systemd, 'StartUnit', 'ss', ('display-manager.service', 'replace'))
    assert sim.bus.wait_until(lambda: len(removed) == 2)
    assert removed[1][2][3] == 'failed' and state() == 'failed'

    sim.bus.call(*mock, 'SetJobBehaviour', 'sssi', ('gdm.service', 'start', 'hang', 0))
    sim.bus.call(*systemd, 'StartUnit', 'ss', ('gdm.service', 'replace'))
    assert not sim.bus.wait_until(lambda: len(removed) == 3, timeout=0.5)
    assert state() == 'activating'
    try:
        sim.bus.call(*systemd, 'StartUnit', 'ss', ('nonexistent.service', 'replace'))
        raise AssertionError('an unknown unit must fail')
    except Exception as e:  # noqa: BLE001
        assert 'NoSuchUnit' in str(e), e


@case(daemon=False)
def harness_hides_the_real_sysfs(sim):
    assert os.getpid() == 1
    assert os.listdir('/sys') == [], 'outside the preload, /sys is the empty tmpfs'
    shown = subprocess.run(['ls', '/sys/bus/pci/devices'], env=sim.preload_env(), capture_output=True, text=True)
    assert GPU in shown.stdout.split(), shown


if __name__ == '__main__':
    main()
