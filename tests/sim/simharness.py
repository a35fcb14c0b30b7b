# SPDX-License-Identifier: GPL-2.0-or-later
"""The simulated machine: gpuswapd on a private system bus over a fake kernel.

A Simulation runs, inside private mount and PID namespaces (an empty tmpfs over /sys, its
own /proc):
  - the fake kernel (fake_kernel.py) with its sysfs testbed built from a machine
    description in machines/,
  - a private dbus-daemon of type system with the project's bus policy,
  - the systemd mock (systemd_mock.py) and python-dbusmock's polkitd,
  - gpuswapd under the umockdev preload, which shows it the testbed as /sys.
Everything is started by PID and ended by PID; when the namespace's first process exits,
the kernel ends whatever is left in it.

Safety: nothing runs unless this process is PID 1 of its own PID namespace with /sys an
empty tmpfs of its own mount namespace, and the preload shows the testbed's marker.

Integration tests use it through main(): every function decorated with @case is one meson
test, run as `SCRIPT CASE` (`SCRIPT --list` names them).
"""
import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_ROOT = os.path.dirname(os.path.dirname(HERE))
MACHINES = os.path.join(HERE, 'machines')
PYTHON = '/usr/bin/python3'
NAMESPACE_ENV = 'GPUSWAP_SIM_NAMESPACE'
SKIP = 77
PRELOAD = 'libumockdev-preload.so.0'
TESTBED_MARKER = 'gpuswap-testbed'

POLKITD = '/usr/lib/polkit-1/polkitd'
# Test users of the real-polkitd cases: one in the group gpuswap, one outside it, and the
# administrator polkit asks for, with the password the shadow file below holds.
TEST_GROUP = ('gpuswap', 4790)
TEST_USERS = {'gpuswap-member': 4791, 'gpuswap-outsider': 4792, 'gpuswap-admin': 4793}
# Unprivileged callers of the hostile cases, each its own uid (dbus-daemon refuses a uid
# that has no user entry).
CALLER_USERS = {f'gpuswap-caller{n}': 4800 + n for n in range(1, 6)}
TEST_ADMIN_PASSWORD = 'admin-secret-4793'
TEST_ADMIN_HASH = '$6$gpuswaptest$uEjKOQuHLrDVCriyb2E7bJu9EjKYUpF.QEdmVc24RwCFSexWo9i4hq7u0ImpHa8doasT/TJOzprYXTKZI3Bvd1'

SYSTEMD = ('org.freedesktop.systemd1', '/org/freedesktop/systemd1', 'org.freedesktop.systemd1.Manager')
DEFAULT_UNITS = [{'name': 'gdm.service', 'aliases': ['display-manager.service'], 'active': True}]


def database_with(source, target, entries, mode=0o644):
    """Writes target: the user or group database source (/etc/passwd, ...) plus those of
    entries ("name:...") whose name it lacks."""
    with open(source) as f:
        text = f.read().rstrip('\n') + '\n'
    names = {line.split(':', 1)[0] for line in text.splitlines()}
    text += ''.join(entry + '\n' for entry in entries if entry.split(':', 1)[0] not in names)
    with open(target, 'w') as f:
        f.write(text)
    os.chmod(target, mode)


def skip(reason):
    print(f'SKIP: {reason}', file=sys.stderr, flush=True)
    sys.exit(SKIP)


def missing_requirements():
    if os.geteuid() != 0:
        return 'needs root (mount and PID namespaces, FUSE)'
    for program in ('unshare', 'dbus-daemon', 'umount'):
        if shutil.which(program) is None:
            return f'{program} is not installed'
    if not os.path.exists('/dev/fuse'):
        return '/dev/fuse is missing (FUSE is needed for the fake kernel)'
    try:
        ctypes.CDLL(PRELOAD)
    except OSError:
        return f'{PRELOAD} is missing (Debian package umockdev)'
    if not os.path.exists(POLKITD):
        return f'{POLKITD} is missing (Debian package polkitd)'
    probe = subprocess.run([PYTHON, '-c', 'import fuse, dbusmock, gi'], capture_output=True)
    if probe.returncode != 0:
        return 'python3-fuse, python3-dbusmock or python3-gi is missing'
    return None


def enter_namespace():
    """Re-executes this script as PID 1 of new mount and PID namespaces, /sys hidden."""
    if os.environ.get(NAMESPACE_ENV) == '1':
        if os.getpid() != 1:
            sys.exit('simharness: not PID 1 of a private PID namespace; refusing to run')
        subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=4m,mode=755', 'gpuswap-nosys', '/sys'], check=True)
        if os.listdir('/sys'):
            sys.exit('simharness: /sys is not empty after hiding it; refusing to run')
        return
    reason = missing_requirements()
    if reason:
        skip(reason)
    env = dict(os.environ, **{NAMESPACE_ENV: '1'})
    argv = ['unshare', '--mount', '--pid', '--fork', '--mount-proc', '--propagation', 'private',
            PYTHON] + [os.path.abspath(sys.argv[0])] + sys.argv[1:]
    result = subprocess.run(argv, env=env)
    sys.exit(result.returncode)


class BusError(Exception):
    def __init__(self, name, message):
        super().__init__(f'{name}: {message}')
        self.name = name
        self.message = message


class Pending:
    def __init__(self):
        self.done = False
        self.result = None
        self.error = None


class Bus:
    """A blocking client of the private bus, with signal recording (Gio)."""

    def __init__(self, address):
        from gi.repository import Gio, GLib
        self.Gio, self.GLib = Gio, GLib
        self.connection = Gio.DBusConnection.new_for_address_sync(
            address, Gio.DBusConnectionFlags.AUTHENTICATION_CLIENT | Gio.DBusConnectionFlags.MESSAGE_BUS_CONNECTION,
            None, None)

    def call(self, destination, path, interface, method, signature=None, args=(), timeout_ms=60000):
        parameters = self.GLib.Variant(f'({signature})', tuple(args)) if signature else None
        try:
            reply = self.connection.call_sync(destination, path, interface, method, parameters, None,
                                              self.Gio.DBusCallFlags.NONE, timeout_ms, None)
        except self.GLib.Error as e:
            name = self.Gio.DBusError.get_remote_error(e) or 'unknown'
            self.Gio.DBusError.strip_remote_error(e)
            raise BusError(name, e.message) from None
        return reply.unpack()

    def call_async(self, destination, path, interface, method, signature=None, args=(), timeout_ms=120000):
        """Sends the call and returns at once; the answer lands in the returned Pending
        while the main context runs (wait_until)."""
        pending = Pending()
        parameters = self.GLib.Variant(f'({signature})', tuple(args)) if signature else None

        def on_reply(connection, result):
            try:
                pending.result = connection.call_finish(result).unpack()
            except self.GLib.Error as e:
                name = self.Gio.DBusError.get_remote_error(e) or 'unknown'
                self.Gio.DBusError.strip_remote_error(e)
                pending.error = BusError(name, e.message)
            pending.done = True

        self.connection.call(destination, path, interface, method, parameters, None, self.Gio.DBusCallFlags.NONE,
                             timeout_ms, None, on_reply)
        return pending

    def get(self, destination, path, interface, name):
        return self.call(destination, path, 'org.freedesktop.DBus.Properties', 'Get', 'ss', (interface, name))[0]

    def subscribe(self, sender, interface, member, path=None):
        received = []

        def on_signal(_connection, _sender, signal_path, _interface, signal_member, parameters):
            received.append((signal_path, signal_member, parameters.unpack()))

        self.connection.signal_subscribe(sender, interface, member, path, None, self.Gio.DBusSignalFlags.NONE,
                                         on_signal)
        # GDBus sends AddMatch without waiting; the bus handles one connection's messages
        # in order, so a round trip makes sure the match is in place before we go on.
        self.call('org.freedesktop.DBus', '/org/freedesktop/DBus', 'org.freedesktop.DBus', 'GetId')
        return received

    def wait_until(self, predicate, timeout=10.0):
        """Runs the main context until predicate() is true; False at the deadline."""
        context = self.GLib.MainContext.default()
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                return False
            context.iteration(False) or time.sleep(0.005)
        return True


class Simulation:
    def __init__(self, machine='z790-rx6800', config=None, latency=False, units=None, daemon=True, polkit='mock',
                 kernel_cmdline='BOOT_IMAGE=/vmlinuz root=/dev/sda1 ro quiet intel_iommu=on', default_bus_path=False):
        self.machine_file = machine if machine.endswith('.json') else os.path.join(MACHINES, machine + '.json')
        with open(self.machine_file) as f:
            self.machine = json.load(f)
        self.config = config
        self.latency = latency
        self.units = DEFAULT_UNITS if units is None else units
        self.with_daemon = daemon
        self.polkit = polkit
        self.kernel_cmdline = kernel_cmdline
        # The bus at the system bus's default path, as clients without an address (the
        # libvirt hook) find it: /run is then a tmpfs of the namespace.
        self.default_bus_path = default_bus_path
        self.processes = []
        self.daemon = None
        self.notifications = []
        self.notify_lock = threading.Lock()

    # ---- lifecycle ---------------------------------------------------------------------
    def __enter__(self):
        if os.environ.get(NAMESPACE_ENV) != '1' or os.getpid() != 1:
            raise RuntimeError('a Simulation runs only inside enter_namespace()')
        self.work = tempfile.mkdtemp(prefix='gpuswap-sim.', dir='/tmp')
        os.chmod(self.work, 0o755)
        self.testbed = os.path.join(self.work, 'tb')
        self.control = os.path.join(self.testbed, 'kernel', 'control')
        self.config_path = os.path.join(self.work, 'gpuswapd.json')
        self.state_dir = os.path.join(self.work, 'state')
        # /run/gpuswapd is a tmpfs on a real system: its fsyncs cost nothing.
        os.makedirs(self.state_dir)
        subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=1m,mode=700', 'gpuswap-state', self.state_dir], check=True)
        try:
            self._isolate_host_configuration()
            self._install_test_users()
            self._start_fake_kernel()
            self._check_testbed()
            self._start_bus()
            self._start_mocks()
            self._start_notify_socket()
            if self.config is not None:
                self.write_config(self.config)
            if self.with_daemon:
                self.start_daemon()
        except BaseException:
            self.__exit__(*sys.exc_info())
            raise
        return self

    def __exit__(self, exc_type, exc, tb):
        if self.daemon and self.daemon.poll() is None:
            self.stop_daemon()
        for process in reversed(self.processes):
            self._end(process)
        if exc_type is not None:
            self.dump_logs()
        for mount in (os.path.join(self.testbed, 'kernel'), self.state_dir):
            subprocess.run(['umount', '-l', mount], stderr=subprocess.DEVNULL)
        shutil.rmtree(self.work, ignore_errors=True)
        return False

    def _end(self, process, timeout=5):
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def _spawn(self, argv, log_name, **kwargs):
        log = open(os.path.join(self.work, log_name), 'ab')
        process = subprocess.Popen(argv, stdout=kwargs.pop('stdout', log), stderr=log, **kwargs)
        self.processes.append(process)
        return process

    def _isolate_host_configuration(self):
        """Diagnose reads the kernel command line, modprobe.d and libvirt's hooks: the
        simulated machine has its own, so no finding depends on the host."""
        cmdline = os.path.join(self.work, 'cmdline')
        with open(cmdline, 'w') as f:
            f.write(self.kernel_cmdline + '\n')
        subprocess.run(['mount', '--bind', cmdline, '/proc/cmdline'], check=True)
        for directory in ('/etc/modprobe.d', '/usr/lib/modprobe.d', '/etc/libvirt'):
            if os.path.isdir(directory):
                subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=1m', 'gpuswap-empty', directory], check=True)
        # Where NVIDIA's driver describes its GPUs (/proc/driver/nvidia): the fake kernel's.
        subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=1m,mode=755', 'gpuswap-proc-driver', '/proc/driver'],
                       check=True)

    def _start_fake_kernel(self):
        argv = [PYTHON, os.path.join(HERE, 'fake_kernel.py'), '--machine', self.machine_file,
                '--testbed', self.testbed] + (['--latency'] if self.latency else [])
        kernel = self._spawn(argv, 'fake-kernel.log', stdout=subprocess.PIPE)
        line = kernel.stdout.readline().decode().strip()
        if line != 'READY':
            raise RuntimeError(f'fake kernel did not start: {self.log("fake-kernel.log")}')

    def _check_testbed(self):
        """The preload must show the testbed as /sys, or nothing of the daemon may run."""
        probe = subprocess.run(['cat', '/sys/' + TESTBED_MARKER], env=self.preload_env(), capture_output=True, text=True)
        if probe.stdout.strip() != self.machine['name']:
            raise RuntimeError(f'the umockdev preload does not show the testbed as /sys: {probe.stderr}')

    def _start_bus(self):
        policy_dir = os.path.join(self.work, 'system.d')
        os.makedirs(policy_dir)
        shutil.copy(os.path.join(SOURCE_ROOT, 'dbus', 'org.gpuswap1.conf'), policy_dir)
        shutil.copy(os.path.join(HERE, 'bus', 'test-services.conf'), policy_dir)
        config = os.path.join(self.work, 'bus.conf')
        with open(os.path.join(HERE, 'bus', 'system-bus.conf')) as source, open(config, 'w') as target:
            target.write(source.read().replace('@POLICY_DIR@', policy_dir))
        if self.default_bus_path:
            subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=4m,mode=755', 'gpuswap-run', '/run'], check=True)
            os.makedirs('/run/dbus')
            self.bus_socket = '/run/dbus/system_bus_socket'
        else:
            self.bus_socket = os.path.join(self.work, 'system_bus_socket')
        self.bus_address = 'unix:path=' + self.bus_socket
        # The socket file exists from bind(), before listen(): only the printed address
        # says the daemon accepts connections.
        daemon = self._spawn(['dbus-daemon', '--config-file=' + config, '--address=' + self.bus_address,
                              '--nofork', '--print-address=1'], 'dbus-daemon.log', stdout=subprocess.PIPE)
        if not daemon.stdout.readline().strip():
            raise RuntimeError('dbus-daemon did not start: ' + self.log('dbus-daemon.log'))
        self.bus = Bus(self.bus_address)

    def _start_mocks(self):
        env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=self.bus_address, PYTHONPATH=HERE)
        parameters = json.dumps({'units': self.units, 'kernel_control': self.control})
        self._spawn([PYTHON, '-m', 'dbusmock', '--system', '-t', os.path.join(HERE, 'systemd_mock.py'),
                     '-p', parameters], 'systemd-mock.log', env=env)
        if self.polkit == 'real':
            self._start_real_polkitd()
        else:
            self._spawn([PYTHON, '-m', 'dbusmock', '--system', '-t', 'polkitd'], 'polkitd-mock.log', env=env)
        for name in ('org.freedesktop.systemd1', 'org.freedesktop.PolicyKit1'):
            self.wait_for_name(name)

    def _install_test_users(self):
        """The test users and the group gpuswap in the user and group databases: bind
        mounts, private to this mount namespace."""
        everyone = {**TEST_USERS, **CALLER_USERS}
        for name, uid in [TEST_GROUP] + list(everyone.items()):
            if subprocess.run(['getent', 'passwd', name], capture_output=True).returncode == 0 or \
               subprocess.run(['getent', 'group', str(uid)], capture_output=True).returncode == 0:
                skip(f'the host already has a user or group {name} or id {uid}')
        etc = os.path.join(self.work, 'etc')
        os.makedirs(etc)
        users = [f'{name}:x:{uid}:{uid}::/nonexistent:/usr/sbin/nologin' for name, uid in everyone.items()]
        groups = [f'{name}:x:{uid}:' for name, uid in everyone.items()] + \
            [f'{TEST_GROUP[0]}:x:{TEST_GROUP[1]}:gpuswap-member']
        passwords = [f'gpuswap-admin:{TEST_ADMIN_HASH}:20000:0:99999:7:::']
        for name, entries, mode in (('passwd', users, 0o644), ('group', groups, 0o644), ('shadow', passwords, 0o600)):
            database_with('/etc/' + name, os.path.join(etc, name), entries, mode)
            subprocess.run(['mount', '--bind', os.path.join(etc, name), '/etc/' + name], check=True)

    def _start_real_polkitd(self):
        """Debian's polkitd with the project's actions and rules."""
        actions = os.path.join(self.work, 'polkit-actions')
        rules = os.path.join(self.work, 'polkit-rules')
        os.makedirs(actions)
        os.makedirs(rules)
        shutil.copy(os.path.join(SOURCE_ROOT, 'polkit', 'org.gpuswap1.policy'), actions)
        shutil.copy(os.path.join(SOURCE_ROOT, 'polkit', '50-gpuswap.rules'), rules)
        with open(os.path.join(rules, '40-test-administrator.rules'), 'w') as f:
            f.write('polkit.addAdminRule(function(action, subject) { return ["unix-user:gpuswap-admin"]; });\n')
        for source, target in ((actions, '/usr/share/polkit-1/actions'), (rules, '/etc/polkit-1/rules.d'),
                               (rules, '/usr/share/polkit-1/rules.d')):
            subprocess.run(['mount', '--bind', source, target], check=True)
        env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=self.bus_address)
        self._spawn([POLKITD, '--no-debug'], 'polkitd.log', env=env)

    @staticmethod
    def as_user_argv(user, argv):
        """argv run as a test user with the groups the group database gives it."""
        uid = TEST_USERS[user]
        return ['setpriv', f'--reuid={uid}', f'--regid={uid}', '--init-groups', *argv]

    def run_as(self, user, argv, **kwargs):
        return subprocess.run(self.as_user_argv(user, argv), capture_output=True, text=True, **kwargs)

    def _start_notify_socket(self):
        """A NOTIFY_SOCKET like systemd's; drained all the time, or sd_notify() blocks."""
        self.notify_path = os.path.join(self.work, 'notify')
        self.notify_socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify_socket.bind(self.notify_path)

        def drain():
            while True:
                try:
                    message = self.notify_socket.recv(4096).decode()
                except OSError:
                    return
                with self.notify_lock:
                    self.notifications.append(message)

        threading.Thread(target=drain, daemon=True).start()

    # ---- the daemon ----------------------------------------------------------------------
    def preload_env(self):
        env = {k: v for k, v in os.environ.items() if not k.startswith('DBUS_')}
        env.update({'UMOCKDEV_DIR': self.testbed, 'LD_PRELOAD': PRELOAD})
        return env

    def daemon_argv(self, *extra):
        binary = os.environ.get('GPUSWAPD') or os.path.join(SOURCE_ROOT, '_build', 'plain', 'daemon', 'gpuswapd')
        return [binary, '--bus-address=' + self.bus_address, '--config=' + self.config_path,
                '--state-dir=' + self.state_dir, '--log-level=debug', *extra]

    def write_config(self, config):
        with open(self.config_path, 'w') as f:
            f.write(config if isinstance(config, str) else json.dumps(config, indent=2))

    def start_daemon(self, *extra, wait=True, env=None):
        environment = self.preload_env()
        environment['NOTIFY_SOCKET'] = self.notify_path
        environment.update(env or {})
        with self.notify_lock:
            self.notifications.clear()
        self.daemon = self._spawn(self.daemon_argv(*extra), 'gpuswapd.log', env=environment)
        if wait and not self.wait_for_notification('READY=1', timeout=30):
            raise RuntimeError('gpuswapd did not get ready: ' + self.log('gpuswapd.log'))
        return self.daemon

    def stop_daemon(self, signum=signal.SIGTERM, timeout=20):
        self.daemon.send_signal(signum)
        return self.daemon.wait(timeout)

    def wait_for_notification(self, text, timeout=10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.notify_lock:
                if any(text in message.split('\n') for message in self.notifications):
                    return True
            if self.daemon and self.daemon.poll() is not None:
                return False
            time.sleep(0.01)
        return False

    def wait_for_name(self, name, timeout=10):
        deadline = time.monotonic() + timeout
        while not self.bus.call('org.freedesktop.DBus', '/org/freedesktop/DBus', 'org.freedesktop.DBus',
                                'NameHasOwner', 's', (name,))[0]:
            if time.monotonic() > deadline:
                raise RuntimeError(f'{name} did not appear on the bus')
            time.sleep(0.01)

    # ---- the machine ---------------------------------------------------------------------
    def kernel(self, **command):
        with open(self.control, 'w') as f:
            f.write(json.dumps(command))

    def kernel_state(self):
        """The fake kernel's report. It is made anew for every read request, so it is read
        in one request; a report that changed between requests is read again."""
        for _ in range(10):
            fd = os.open(self.control, os.O_RDONLY)
            try:
                text = b''
                while chunk := os.read(fd, 1 << 20):
                    text += chunk
            finally:
                os.close(fd)
            try:
                return json.loads(text)
            except json.JSONDecodeError:
                continue
        raise RuntimeError('the fake kernel\'s report kept changing while it was read')

    def hold(self, devname, reacts=False):
        """Starts a process that keeps <testbed>/dev/<devname> open, as a compositor holds
        /dev/dri/card1 or QEMU /dev/vfio/14. One that reacts closes it when the driver
        disconnects the node (as PipeWire does with a sound card); one that does not
        (sleep) keeps it until .kill()."""
        node = os.path.realpath(os.path.join(self.testbed, 'dev', devname))
        # The simulated disconnect writes a line to the node's pty; head reads it and exits.
        program = 'exec 3<>"$0"; exec head -n1 <&3 >/dev/null' if reacts else 'exec sleep 600 3<>"$0"'
        holder = subprocess.Popen(['sh', '-c', program, node])
        self.processes.append(holder)
        deadline = time.monotonic() + 5
        while not (os.path.exists(f'/proc/{holder.pid}/fd/3') and
                   os.path.realpath(f'/proc/{holder.pid}/fd/3') == node):
            if time.monotonic() > deadline:
                raise RuntimeError(f'the holder of {devname} did not start')
            time.sleep(0.01)
        return holder

    def sound_control_node(self, address):
        """The devname of a sound function's control node, e.g. "snd/controlC1"."""
        cards = os.listdir(self.sysfs(f'bus/pci/devices/{address}/sound'))
        return f'snd/controlC{cards[0][len("card"):]}'

    def sysfs(self, relative):
        return os.path.join(self.testbed, 'sys', relative)

    def sysfs_write(self, relative, value):
        """A write as the daemon makes it: O_WRONLY|O_TRUNC, one write(). Raises OSError."""
        fd = os.open(self.sysfs(relative), os.O_WRONLY | os.O_TRUNC)
        try:
            os.write(fd, value.encode())
        finally:
            os.close(fd)

    def device_state(self, address):
        directory = self.sysfs(f'bus/pci/devices/{address}')
        driver_link = os.path.join(directory, 'driver')
        with open(os.path.join(directory, 'driver_override')) as f:
            override = f.read().strip()
        with open(os.path.join(directory, 'resource')) as f:
            sizes = []
            for line in f.read().splitlines()[:6]:
                start, end, _ = (int(x, 16) for x in line.split())
                sizes.append(end - start + 1 if end > start else 0)
        drm = os.path.join(directory, 'drm')
        return {
            'driver': os.path.basename(os.readlink(driver_link)) if os.path.lexists(driver_link) else '',
            'override': '' if override == '(null)' else override,
            'bar_sizes': sizes,
            'drm_nodes': sorted(os.listdir(drm)) if os.path.isdir(drm) else [],
        }

    def snapshot(self):
        """Every device's driver, override, BAR sizes and DRM nodes: compare before and after."""
        return {spec['address']: self.device_state(spec['address']) for spec in self.machine['devices']}

    def unit_state(self, unit='display-manager.service'):
        """The unit's ActiveState as the systemd mock reports it."""
        return self.bus.call(*SYSTEMD, 'ListUnitsByNames', 'as', ([unit],))[0][0][3]

    # ---- diagnostics -------------------------------------------------------------------
    def log(self, name):
        try:
            with open(os.path.join(self.work, name), errors='replace') as f:
                return f.read()
        except OSError:
            return '(no log)'

    def dump_logs(self):
        for name in ('gpuswapd.log', 'fake-kernel.log', 'systemd-mock.log', 'dbus-daemon.log', 'polkitd.log'):
            text = self.log(name)
            if text.strip():
                print(f'----- {name} -----\n{text[-6000:]}', file=sys.stderr)


class Manager:
    """gpuswapd's objects through a Bus."""

    def __init__(self, bus):
        self.bus = bus

    def call(self, method, signature=None, args=(), timeout_ms=60000):
        return self.bus.call('org.gpuswap1', '/org/gpuswap1', 'org.gpuswap1.Manager', method, signature, args,
                             timeout_ms)

    def call_async(self, method, signature=None, args=()):
        return self.bus.call_async('org.gpuswap1', '/org/gpuswap1', 'org.gpuswap1.Manager', method, signature, args)

    def prepare(self, vm, **options):
        return self.call('PrepareVM', 'sa{sv}', (vm, variants(options)))[0]

    def release(self, vm, **options):
        return self.call('ReleaseVM', 'sa{sv}', (vm, variants(options)))[0]

    def expect_error(self, name, method, signature=None, args=()):
        """Calls and returns the error message; fails unless the error is `name`."""
        try:
            self.call(method, signature, args)
        except BusError as e:
            assert e.name == name, f'{method}{args!r:.200}: expected {name}, got {e}'
            return e.message
        raise AssertionError(f'{method}{args!r:.200}: expected {name}, the call succeeded')

    def get(self, name):
        return self.bus.get('org.gpuswap1', '/org/gpuswap1', 'org.gpuswap1.Manager', name)

    def device(self, address, name):
        path = '/org/gpuswap1/device/pci_' + address.replace(':', '_').replace('.', '_')
        return self.bus.get('org.gpuswap1', path, 'org.gpuswap1.Device', name)

    def managed_objects(self):
        return self.bus.call('org.gpuswap1', '/org/gpuswap1', 'org.freedesktop.DBus.ObjectManager',
                             'GetManagedObjects')[0]


def variants(options):
    """Python options (dry_run=True, domain_xml='...') as a{sv}."""
    from gi.repository import GLib
    return {key.replace('_', '-'): GLib.Variant('s' if isinstance(value, str) else 'b', value)
            for key, value in options.items()}


_cases = {}


def case(machine='z790-rx6800', **settings):
    """Marks a test case and the simulated machine it runs on (Simulation's arguments)."""
    def register(function):
        _cases[function.__name__] = (function, dict(machine=machine, **settings))
        return function
    return register


def main():
    if sys.argv[1:] == ['--list']:
        print('\n'.join(_cases))
        return
    if len(sys.argv) != 2 or sys.argv[1] not in _cases:
        sys.exit(f'usage: {sys.argv[0]} --list | CASE   (cases: {", ".join(_cases)})')
    enter_namespace()
    function, settings = _cases[sys.argv[1]]
    try:
        with Simulation(**settings) as simulation:
            function(simulation)
    except Exception:
        traceback.print_exc()
        print(f'FAIL {sys.argv[1]}', flush=True)
        sys.exit(1)
    print(f'PASS {sys.argv[1]}', flush=True)
