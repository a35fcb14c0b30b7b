#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""The simulated machine's kernel: builds a sysfs testbed from a machine description and
answers the writes a daemon makes to it the way Linux does.

    fake_kernel.py --machine MACHINE.json --testbed DIR [--latency]

DIR/sys is the sysfs tree the umockdev preload shows its processes as /sys. The attribute
files whose writes run kernel code (driver_override, drivers/X/bind|unbind|new_id|remove_id,
drivers_probe, resourceN_resize) are relative links into a FUSE file system mounted at
DIR/kernel, served here: a write blocks its writer for the modelled time and fails with the
kernel's errno, which a plain testbed file cannot do. DIR/kernel/control takes JSON commands
(fault injection, loading a driver, the latency model) and reads back the history of writes.

Each model follows the kernel source it names; DESIGN.md's kernel facts were measured on
a real 6.1 kernel.

Prints "READY" on stdout when the tree is built and the file system is mounted; unmounts
on SIGTERM. Runs only where /sys is an empty tmpfs (the harness's mount namespace).
"""
import argparse
import errno
import json
import os
import select
import stat
import sys
import threading
import time
import traceback

import fuse

from uevent_sender import UeventSender

fuse.fuse_python_api = (0, 2)

HERE = os.path.dirname(os.path.abspath(__file__))
MIB = 1 << 20
SIZE_SUFFIXES = {'K': 10, 'M': 20, 'G': 30, 'T': 40}
TESTBED_MARKER = 'gpuswap-testbed'
WRITE_ONLY_DRIVER_FILES = ('bind', 'unbind', 'new_id', 'remove_id')
IORESOURCE_MEM_64_PREFETCH = 0x14220c
# The harness mounts a tmpfs here, in its own mount namespace.
NVIDIA_PROC = '/proc/driver/nvidia'


def parse_size(text):
    return int(text[:-1]) << SIZE_SUFFIXES[text[-1]]


def hex_line(value, width):
    return f'0x{value:0{width}x}\n'


def wait_until_closed(masters):
    """Until no process has any of the nodes open: a pty master reports POLLHUP while
    its slave is open nowhere."""
    waiting = select.poll()
    for master in masters:
        waiting.register(master, select.POLLHUP)
    pending = set(masters)
    while pending:
        for fd, _ in waiting.poll():
            pending.discard(fd)
            waiting.unregister(fd)


class KernelError(Exception):
    def __init__(self, code):
        super().__init__(errno.errorcode[code])
        self.code = code


class Device:
    def __init__(self, spec, devpath):
        self.address = spec['address']
        self.vendor = int(spec['vendor'], 16)
        self.device = int(spec['device'], 16)
        self.class_code = int(spec['class'], 16)
        self.subsystem_vendor = int(spec.get('subsystem_vendor', spec['vendor']), 16)
        self.subsystem_device = int(spec.get('subsystem_device', spec['device']), 16)
        self.default_driver = spec.get('default_driver', spec.get('driver'))
        # Drivers whose ID tables match the device, in the order they registered: a probe
        # without driver_override binds the first one loaded (drivers/base/dd.c,
        # __device_attach walks the bus's driver list).
        self.matching_drivers = spec.get('matching_drivers', [self.default_driver] if self.default_driver else [])
        # Largest size the bridge window above 4 GiB can give BAR 0 (None: no limit).
        self.window = parse_size(spec['window']) if 'window' in spec else None
        # The firmware placed the BARs below 4 GiB ("Above 4G Decoding" off): a 32-bit window,
        # no room above 256 MiB (drivers/pci/setup-bus.c sizes it from what the BARs need).
        self.below_4g = spec.get('bars_below_4g', False)
        if self.below_4g:
            self.window = 256 * MIB
        # The kernel's device_lock(): held by bind, unbind, drivers_probe, resourceN_resize
        # and driver_override, written or read (drivers/base/dd.c, drivers/pci/pci-sysfs.c).
        self.lock = threading.Lock()
        self.iommu_group = spec.get('iommu_group')
        self.boot_vga = spec.get('boot_vga')
        self.devpath = devpath           # /devices/pci0000:00/...
        self.driver = None
        self.override = None
        self.bars = {}                    # index -> {'size', 'mask'}
        for bar in spec.get('bars', []):
            mask = 0
            if 'resizable' in bar:
                low = parse_size(bar['resizable']['min']) // MIB
                high = parse_size(bar['resizable']['max']) // MIB
                for bit in range(low.bit_length() - 1, high.bit_length()):
                    mask |= 1 << bit
            self.bars[bar['index']] = {'size': parse_size(bar['size']), 'mask': mask}
        self.children = []                # (subsystem, devpath, properties) of DRM and sound nodes
        # What udev's hwdb names the device (udev's rule 50-udev-default.rules imports the
        # builtin "hwdb --subsystem=pci" for every PCI device). Served the way umockdev serves
        # udev properties: in the uevent file, where libudev reads a device's properties too.
        self.names = spec.get('names')
        # DRM connectors of the GPU's card and whether a CRTC scans out through each:
        # drm/cardN/cardN-<name>/enabled (drivers/gpu/drm/drm_sysfs.c, enabled_show).
        self.connectors = spec.get('connectors', {})

    def uevent_properties(self):
        properties = {'DRIVER': self.driver} if self.driver else {}
        properties.update({
            'PCI_CLASS': f'{self.class_code:X}',
            'PCI_ID': f'{self.vendor:04X}:{self.device:04X}',
            'PCI_SUBSYS_ID': f'{self.subsystem_vendor:04X}:{self.subsystem_device:04X}',
            'PCI_SLOT_NAME': self.address,
            'MODALIAS': (f'pci:v{self.vendor:08X}d{self.device:08X}sv{self.subsystem_vendor:08X}'
                         f'sd{self.subsystem_device:08X}bc{self.class_code >> 16:02X}'
                         f'sc{(self.class_code >> 8) & 0xff:02X}i{self.class_code & 0xff:02X}'),
        })
        if self.names:
            properties.update({'ID_VENDOR_FROM_DATABASE': self.names[0], 'ID_MODEL_FROM_DATABASE': self.names[1]})
        return properties


class FakeKernel:
    def __init__(self, machine, testbed, latency):
        self.machine = machine
        self.testbed = testbed
        self.sys = os.path.join(testbed, 'sys')
        self.fuse_dir = os.path.join(testbed, 'kernel')
        self.latency_enabled = latency
        self.lock = threading.RLock()
        self.events = UeventSender(testbed)
        self.drivers = {}      # name -> spec (loaded drivers only)
        self.devices = {}      # address -> Device
        self.faults = []
        self.removed = []      # devices taken away by remove-device, back on rescan
        self.nodes = {}        # devname -> pty master standing for the device node
        self.writes = []       # history: {'path', 'value', 'result'}
        self.reads = {}        # path -> how often it was read
        self.release = threading.Event()
        self.hung = 0

    # ---- building the tree -------------------------------------------------------
    def path(self, *parts):
        return os.path.join(self.sys, *[p.lstrip('/') for p in parts])

    def write_file(self, path, text):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, 'w') as f:
            f.write(text)

    def link(self, link_path, target_path):
        """Relative links, as in sysfs, so they resolve inside the testbed."""
        os.makedirs(os.path.dirname(link_path), exist_ok=True)
        if os.path.lexists(link_path):
            os.unlink(link_path)
        os.symlink(os.path.relpath(target_path, os.path.dirname(link_path)), link_path)

    def link_into_kernel(self, sysfs_path, kernel_path):
        self.link(sysfs_path, os.path.join(self.fuse_dir, kernel_path))

    def build(self):
        os.makedirs(self.sys)
        self.write_file(self.path(TESTBED_MARKER), self.machine['name'] + '\n')
        self.link_into_kernel(self.path('bus/pci/drivers_probe'), 'drivers_probe')
        self.write_file(self.path('bus/pci/drivers_autoprobe'), '1\n')
        self.write_file(self.path('bus/pci/rescan'), '')
        for name, spec in self.machine['drivers'].items():
            if spec.get('loaded', True):
                self.add_driver(name)
        by_address = {spec['address']: spec for spec in self.machine['devices']}

        def devpath_of(spec):
            parent = spec.get('parent')
            base = devpath_of(by_address[parent]) if parent else '/devices/pci0000:00'
            return f'{base}/{spec["address"]}'

        for spec in sorted(self.machine['devices'], key=lambda s: devpath_of(s).count('/')):
            device = Device(spec, devpath_of(spec))
            self.devices[device.address] = device
            self.add_device_files(device)
        for address in sorted(self.devices):
            device = self.devices[address]
            driver = next(s['driver'] for s in self.machine['devices'] if s['address'] == address)
            if driver:
                self.attach(device, driver, announce=False)

    def add_driver(self, name):
        directory = self.path('bus/pci/drivers', name)
        os.makedirs(directory, exist_ok=True)
        for attribute in WRITE_ONLY_DRIVER_FILES:
            self.link_into_kernel(os.path.join(directory, attribute), f'drivers/{name}/{attribute}')
        self.drivers[name] = self.machine['drivers'][name]
        if self.drivers[name].get('creates') == 'nvidia':
            # The nodes every NVIDIA GPU shares while the module is loaded.
            for shared in ('nvidiactl', 'nvidia-modeset'):
                self.make_node(shared)

    def add_device_files(self, device):
        directory = self.path(device.devpath)
        for attribute, value in (('vendor', hex_line(device.vendor, 4)),
                                 ('device', hex_line(device.device, 4)),
                                 ('class', hex_line(device.class_code, 6)),
                                 ('subsystem_vendor', hex_line(device.subsystem_vendor, 4)),
                                 ('subsystem_device', hex_line(device.subsystem_device, 4)),
                                 ('enable', '1\n'), ('reset', '')):
            self.write_file(os.path.join(directory, attribute), value)
        if device.boot_vga is not None:
            self.write_file(os.path.join(directory, 'boot_vga'), '1\n' if device.boot_vga else '0\n')
        self.write_config_file(device)
        self.write_resource_file(device)
        self.link_into_kernel(os.path.join(directory, 'driver_override'),
                              f'devices/{device.address}/driver_override')
        for index, bar in device.bars.items():
            if bar['mask']:
                self.link_into_kernel(os.path.join(directory, f'resource{index}_resize'),
                                      f'devices/{device.address}/resource{index}_resize')
        self.link(os.path.join(directory, 'subsystem'), self.path('bus/pci'))
        self.link(self.path('bus/pci/devices', device.address), directory)
        if device.iommu_group is not None:
            group = self.path('kernel/iommu_groups', str(device.iommu_group))
            self.link(os.path.join(directory, 'iommu_group'), group)
            self.link(os.path.join(group, 'devices', device.address), directory)
        self.write_uevent_file(device)

    def write_config_file(self, device):
        """The first 64 bytes of configuration space (include/uapi/linux/pci_regs.h): IDs,
        class, and the header type: 1 for a PCI-to-PCI bridge (class 0x0604), 0 otherwise."""
        config = bytearray(64)
        config[0:4] = device.vendor.to_bytes(2, 'little') + device.device.to_bytes(2, 'little')
        config[9:12] = device.class_code.to_bytes(3, 'little')
        config[14] = 1 if device.class_code >> 8 == 0x0604 else 0
        with open(os.path.join(self.path(device.devpath), 'config'), 'wb') as f:
            f.write(bytes(config))

    def write_resource_file(self, device):
        lines = []
        base = 0xc0000000 if device.below_4g else 0x7000000000 + (int(device.address[5:7], 16) << 36)
        for index in range(13):
            bar = device.bars.get(index)
            if bar:
                lines.append(f'0x{base:016x} 0x{base + bar["size"] - 1:016x} 0x{IORESOURCE_MEM_64_PREFETCH:016x}')
                base += bar['size']
            else:
                lines.append('0x0000000000000000 0x0000000000000000 0x0000000000000000')
        self.write_file(os.path.join(self.path(device.devpath), 'resource'), '\n'.join(lines) + '\n')

    def write_uevent_file(self, device):
        text = ''.join(f'{k}={v}\n' for k, v in device.uevent_properties().items())
        self.write_file(os.path.join(self.path(device.devpath), 'uevent'), text)

    # ---- kernel behaviour ------------------------------------------------------------
    def model_latency(self, driver, operation):
        if not self.latency_enabled:
            return
        if operation == 'resize':
            milliseconds = self.machine.get('resize_latency_ms', 0)
        else:
            milliseconds = self.machine['drivers'].get(driver, {}).get('latency_ms', {}).get(operation, 0)
        if milliseconds:
            time.sleep(milliseconds / 1000)

    def device_or_enodev(self, address):
        device = self.devices.get(address.strip())
        if device is None:
            raise KernelError(errno.ENODEV)
        return device

    def matches(self, driver, device):
        # pci_match_device(): a driver_override admits exactly the named driver.
        if device.override is not None:
            return device.override == driver
        return device.default_driver == driver

    def take_fault(self, operation, device, driver):
        for fault in self.faults:
            if fault['on'] != operation:
                continue
            if fault.get('device') not in (None, device.address if device else None):
                continue
            if fault.get('driver') not in (None, driver):
                continue
            if fault.get('times') is not None:
                fault['times'] -= 1
                if fault['times'] <= 0:
                    self.faults.remove(fault)
            return fault
        return None

    def fault_effect(self, operation, device, driver):
        fault = self.take_fault(operation, device, driver)
        return self.apply_fault(fault) if fault else None

    def apply_fault(self, fault):
        """Returns the driver to bind instead, or None to go on normally."""
        effect = fault['effect']
        if effect == 'refuse':
            raise KernelError(getattr(errno, fault.get('errno', 'EIO')))
        if effect == 'hang':
            with self.lock:
                self.hung += 1
            self.release.wait()
            raise KernelError(errno.EIO)
        return effect

    def write_override(self, device, value):
        # driver_override_store() -> driver_set_override(): under the device lock, up to
        # the first newline; empty clears it.
        text = value.split('\n', 1)[0]
        with device.lock, self.lock:
            device.override = text or None

    def unbind(self, driver, device):
        # unbind_store() -> device_driver_detach() -> the driver's remove() under the
        # device lock (drivers/base/bus.c, drivers/base/dd.c).
        with device.lock:
            if device.driver != driver:
                raise KernelError(errno.ENODEV)
            effect = self.fault_effect('unbind', device, driver)
            self.model_latency(driver, 'unbind')
            if effect == 'noop':
                return
            announce = effect != 'no-event'
            waits = self.machine['drivers'].get(driver, {}).get('remove_waits_for_open_files')
            if waits == 'disconnect':
                self.disconnect_and_wait(device, announce)
            elif waits == 'in-use':
                self.wait_while_in_use(device)
            with self.lock:
                self.detach(device, announce=announce)

    def disconnect_and_wait(self, device, announce):
        """An HDA-like remove(): snd_card_disconnect() unregisters the card's device nodes
        (their "remove" events) and wakes every open file with an error, then
        snd_card_free() waits until the last of them is closed (sound/core/init.c).
        A holder that reacts closes; one that does not keeps the unbind blocked."""
        with self.lock:
            masters = self.remove_children(device, announce, keep_nodes=True)
        for master in masters:
            os.write(master, b'disconnected\n')
        wait_until_closed(masters)
        for master in masters:
            os.close(master)

    def wait_while_in_use(self, device):
        """NVIDIA's remove(): while /dev/nvidiaN is open it waits, uninterruptibly on a
        real system, and tells nobody (NVIDIA's open kernel modules, nv_pci_remove()
        loops until the device's usage count drops)."""
        wait_until_closed([self.nodes[f'nvidia{device.nvidia_minor}']])

    def bind(self, driver, device, operation):
        fault = self.take_fault(operation, device, driver)
        effect = self.apply_fault(fault) if fault else None
        self.model_latency(driver, 'bind')
        if effect == 'noop':
            return
        if effect == 'wrong-driver':
            driver = fault['bind_instead']
        with self.lock:
            self.attach(device, driver, announce=effect != 'no-event')

    def write_bind(self, driver, device):
        with device.lock:
            if device.driver is not None:
                raise KernelError(errno.EBUSY)
            if not self.matches(driver, device):
                raise KernelError(errno.ENODEV)
            self.bind(driver, device, 'bind')

    def write_probe(self, device):
        with device.lock:
            if device.driver is not None:
                return
            if device.override is not None:
                candidate = device.override
            else:
                candidate = next((name for name in device.matching_drivers if name in self.drivers), None)
            # An override naming an absent driver binds nothing, and the write still succeeds.
            if candidate in self.drivers:
                self.bind(candidate, device, 'probe')

    def write_resize(self, device, index, value):
        # __resource_resize_store() (drivers/pci/pci-sysfs.c, 6.1): under the device lock,
        # EBUSY while any driver is bound; pci_resize_resource() fails with ENOSPC when the
        # bridge window has no room for the new size.
        try:
            bit = int(value.strip(), 0)
        except ValueError as e:
            raise KernelError(errno.EINVAL) from e
        with device.lock:
            if device.driver is not None:
                raise KernelError(errno.EBUSY)
            bar = device.bars[index]
            if bit < 0 or not (bar['mask'] >> bit) & 1:
                raise KernelError(errno.EINVAL)
            if device.window is not None and (MIB << bit) > device.window:
                raise KernelError(errno.ENOSPC)
            effect = self.fault_effect('resize', device, None)
            self.model_latency(None, 'resize')
            if effect == 'noop':
                return
            with self.lock:
                bar['size'] = MIB << bit
                self.write_resource_file(device)

    def grow_bar0(self, device):
        """amdgpu_device_resize_fb_bar(): at probe, BAR 0 grows to the largest size the
        device supports and the window has room for."""
        bar = device.bars.get(0)
        if not bar or not bar['mask']:
            return
        sizes = [MIB << bit for bit in range(64) if (bar['mask'] >> bit) & 1]
        fitting = [size for size in sizes if device.window is None or size <= device.window]
        if fitting and max(fitting) > bar['size']:
            bar['size'] = max(fitting)
            self.write_resource_file(device)

    def attach(self, device, driver, announce=True):
        self.link(os.path.join(self.path(device.devpath), 'driver'), self.path('bus/pci/drivers', driver))
        self.link(self.path('bus/pci/drivers', driver, device.address), self.path(device.devpath))
        device.driver = driver
        self.write_uevent_file(device)
        if self.machine['drivers'].get(driver, {}).get('grows_bar0'):
            self.grow_bar0(device)
        creates = self.machine['drivers'].get(driver, {}).get('creates')
        if creates == 'drm':
            minor = self.lowest_free('drm', 'card')
            self.add_child(device, 'drm', f'card{minor}', True, f'dri/card{minor}', 'drm_minor')
            self.add_child(device, 'drm', f'renderD{128 + minor}', True, f'dri/renderD{128 + minor}', 'drm_minor')
            for name, state in device.connectors.items():
                self.add_child(device, 'drm', f'card{minor}/card{minor}-{name}', False, None, None)
                connector = self.path(device.devpath, 'drm', f'card{minor}', f'card{minor}-{name}')
                self.write_file(os.path.join(connector, 'enabled'), state + '\n')
                self.write_file(os.path.join(connector, 'status'),
                                ('connected' if state == 'enabled' else 'disconnected') + '\n')
        elif creates == 'nvidia':
            self.attach_nvidia(device)
        elif creates == 'sound':
            card = self.lowest_free('sound', 'card')
            self.add_child(device, 'sound', f'card{card}', False, None, None)
            self.add_child(device, 'sound', f'card{card}/controlC{card}', True, f'snd/controlC{card}', None)
        elif driver == 'vfio-pci':
            self.add_vfio_group(device)
        if announce:
            # The kernel announces the nodes a driver creates during probe, then the bind.
            for subsystem, devpath, properties in device.children:
                self.events.send('add', devpath, subsystem, properties)
            self.events.send('bind', device.devpath, 'pci', device.uevent_properties())

    def attach_nvidia(self, device):
        """NVIDIA's proprietary driver: /dev/nvidiaN (major 195 on a real system) with no
        sysfs node of its own, named by "Device Minor" in
        /proc/driver/nvidia/gpus/<address>/information; nvidia-drm adds DRM nodes."""
        taken = {d.nvidia_minor for d in self.devices.values() if getattr(d, 'nvidia_minor', None) is not None}
        device.nvidia_minor = next(n for n in range(len(taken) + 1) if n not in taken)
        self.make_node(f'nvidia{device.nvidia_minor}')
        self.write_file(os.path.join(NVIDIA_PROC, 'gpus', device.address, 'information'),
                        f'Model: \t\t NVIDIA GeForce RTX 2080\nIRQ:   \t\t 150\nGPU UUID: \t GPU-{device.address}\n'
                        f'Video BIOS: \t 90.04.23.00.5f\nBus Type: \t PCIe\nDMA Size: \t 47 bits\n'
                        f'Bus Location: \t {device.address}\nDevice Minor: \t {device.nvidia_minor}\n')
        minor = self.lowest_free('drm', 'card')
        self.add_child(device, 'drm', f'card{minor}', True, f'dri/card{minor}', 'drm_minor')
        self.add_child(device, 'drm', f'renderD{128 + minor}', True, f'dri/renderD{128 + minor}', 'drm_minor')

    def detach_nvidia(self, device):
        self.remove_node(f'nvidia{device.nvidia_minor}')
        self.remove_tree(os.path.join(NVIDIA_PROC, 'gpus', device.address))
        device.nvidia_minor = None

    def lowest_free(self, subsystem, prefix):
        """The kernel hands out DRM minors and sound card numbers lowest-free first (idr)."""
        taken = {int(name[len(prefix):]) for name in os.listdir(self.path('class', subsystem))
                 if name.startswith(prefix) and name[len(prefix):].isdigit()} \
            if os.path.isdir(self.path('class', subsystem)) else set()
        return next(n for n in range(len(taken) + 1) if n not in taken)

    def remove_children(self, device, announce, keep_nodes=False):
        """The driver's DRM and sound devices go (with "remove" events); returns the pty
        masters of their nodes when keep_nodes (open files outlive the nodes)."""
        children, device.children = device.children, []
        kept = []
        if announce:
            for subsystem, devpath, properties in reversed(children):
                self.events.send('remove', devpath, subsystem, properties)
        for subsystem, devpath, properties in reversed(children):
            name = devpath.rsplit('/', 1)[1]
            if 'DEVNAME' in properties:
                if keep_nodes:
                    kept.append(self.unlink_node(properties['DEVNAME']))
                else:
                    self.remove_node(properties['DEVNAME'])
            if subsystem in ('drm', 'sound') and os.path.lexists(self.path('class', subsystem, name)):
                os.unlink(self.path('class', subsystem, name))
            self.remove_tree(self.path(devpath))
        for directory in ('drm', 'sound'):
            if os.path.isdir(os.path.join(self.path(device.devpath), directory)):
                os.rmdir(os.path.join(self.path(device.devpath), directory))
        return kept

    def detach(self, device, announce=True):
        driver = device.driver
        self.remove_children(device, announce)
        if getattr(device, 'nvidia_minor', None) is not None:
            self.detach_nvidia(device)
        os.unlink(os.path.join(self.path(device.devpath), 'driver'))
        os.unlink(self.path('bus/pci/drivers', driver, device.address))
        device.driver = None
        self.write_uevent_file(device)
        if driver == 'vfio-pci':
            self.remove_vfio_group(device, announce)
        if announce:
            self.events.send('unbind', device.devpath, 'pci', device.uevent_properties())

    def remove_device(self, device):
        """As echo 1 > remove: the driver goes, then the device."""
        if device.driver is not None:
            self.detach(device)
        directory = self.path(device.devpath)
        for link in (self.path('bus/pci/devices', device.address),
                     self.path('kernel/iommu_groups', str(device.iommu_group), 'devices', device.address)):
            if os.path.lexists(link):
                os.unlink(link)
        self.remove_tree(directory)
        del self.devices[device.address]
        self.removed.append(device)
        self.events.send('remove', device.devpath, 'pci', device.uevent_properties())

    def rescan(self):
        """As echo 1 > rescan: removed devices return with a cleared driver_override and
        are probed."""
        for device in self.removed:
            device.override = None
            self.devices[device.address] = device
            self.add_device_files(device)
            self.events.send('add', device.devpath, 'pci', device.uevent_properties())
            if device.default_driver in self.drivers:
                self.attach(device, device.default_driver)
        self.removed.clear()

    def remove_tree(self, path):
        """rmtree that never follows the tree's links (they point all over sysfs)."""
        for entry in os.scandir(path):
            if entry.is_dir(follow_symlinks=False):
                self.remove_tree(entry.path)
            else:
                os.unlink(entry.path)
        os.rmdir(path)

    def make_node(self, devname):
        """A device node a test process can hold: gpuswapd finds holders by st_rdev, so the
        node is a pty whose number stands everywhere the kernel's would (the sysfs dev
        attribute, the uevent, and stat() of the node, which the preload answers from
        <testbed>/dev/.node/<devname with _ for />); <testbed>/dev/<devname> links to it."""
        master, slave = os.openpty()
        number = os.fstat(slave).st_rdev
        pts = os.ttyname(slave)
        os.close(slave)
        self.nodes[devname] = master
        for link, target in ((os.path.join(self.testbed, 'dev', devname), pts),
                             (self.node_number_link(devname), f'{os.major(number)}:{os.minor(number)}')):
            os.makedirs(os.path.dirname(link), exist_ok=True)
            if os.path.lexists(link):
                os.unlink(link)
            os.symlink(target, link)
        return os.major(number), os.minor(number)

    def node_number_link(self, devname):
        return os.path.join(self.testbed, 'dev', '.node', devname.replace('/', '_'))

    def unlink_node(self, devname):
        """The node goes; returns the pty master, which stands for the files still open."""
        os.unlink(os.path.join(self.testbed, 'dev', devname))
        os.unlink(self.node_number_link(devname))
        return self.nodes.pop(devname)

    def remove_node(self, devname):
        os.close(self.unlink_node(devname))

    def add_child(self, device, subsystem, name, has_node, devname, devtype):
        devpath = f'{device.devpath}/{subsystem}/{name}'
        directory = self.path(devpath)
        properties = {}
        if has_node:
            major, minor = self.make_node(devname)
            properties.update({'MAJOR': str(major), 'MINOR': str(minor), 'DEVNAME': devname})
            self.write_file(os.path.join(directory, 'dev'), f'{major}:{minor}\n')
        if devtype:
            properties['DEVTYPE'] = devtype
        self.write_file(os.path.join(directory, 'uevent'), ''.join(f'{k}={v}\n' for k, v in properties.items()))
        self.link(os.path.join(directory, 'subsystem'), self.path('class', subsystem))
        self.link(self.path('class', subsystem, name.rsplit('/', 1)[-1]), directory)
        device.children.append((subsystem, devpath, properties))

    def vfio_group_members(self, group):
        return [d for d in self.devices.values() if d.iommu_group == group and d.driver == 'vfio-pci']

    def add_vfio_group(self, device):
        group = device.iommu_group
        if group is None or len(self.vfio_group_members(group)) > 1:
            return
        devpath = f'/devices/virtual/vfio/{group}'
        major, minor = self.make_node(f'vfio/{group}')
        self.write_file(os.path.join(self.path(devpath), 'dev'), f'{major}:{minor}\n')
        self.link(self.path('class/vfio', str(group)), self.path(devpath))
        self.events.send('add', devpath, 'vfio', {'DEVNAME': f'vfio/{group}'})

    def remove_vfio_group(self, device, announce):
        group = device.iommu_group
        if group is None or self.vfio_group_members(group):
            return
        devpath = f'/devices/virtual/vfio/{group}'
        self.remove_node(f'vfio/{group}')
        os.unlink(self.path('class/vfio', str(group)))
        self.remove_tree(self.path(devpath))
        if announce:
            self.events.send('remove', devpath, 'vfio', {'DEVNAME': f'vfio/{group}'})

    # ---- the FUSE side ------------------------------------------------------------------
    def handle_write(self, path, value):
        """path inside the kernel mount; returns None or raises KernelError."""
        parts = path.strip('/').split('/')
        if parts == ['drivers_probe']:
            self.write_probe(self.device_or_enodev(value))
        elif len(parts) == 3 and parts[0] == 'drivers' and parts[1] in self.drivers:
            driver, operation = parts[1], parts[2]
            if operation == 'unbind':
                self.unbind(driver, self.device_or_enodev(value))
            elif operation == 'bind':
                self.write_bind(driver, self.device_or_enodev(value))
            # new_id/remove_id: accepted; no simulated device matches by dynamic ID.
        elif len(parts) == 3 and parts[0] == 'devices' and parts[1] in self.devices:
            device = self.devices[parts[1]]
            if parts[2] == 'driver_override':
                self.write_override(device, value)
            elif parts[2].startswith('resource') and parts[2].endswith('_resize'):
                self.write_resize(device, int(parts[2][len('resource'):-len('_resize')]), value)
        elif parts == ['control']:
            self.control(json.loads(value))
        else:
            raise KernelError(errno.EACCES)

    def read_file(self, path):
        parts = path.strip('/').split('/')
        if parts == ['control']:
            with self.lock:
                return json.dumps({'writes': self.writes, 'hung': self.hung, 'faults': self.faults,
                                   'latency': self.latency_enabled, 'reads': self.reads}) + '\n'
        with self.lock:
            self.reads[path] = self.reads.get(path, 0) + 1
        if len(parts) == 3 and parts[0] == 'devices' and parts[1] in self.devices:
            device = self.devices[parts[1]]
            if parts[2] == 'driver_override':
                # driver_override_show() takes the device lock: a read waits for a
                # remove() or probe() in progress, forever on a wedged device.
                with device.lock:
                    return (device.override or '(null)') + '\n'
            if parts[2].startswith('resource') and parts[2].endswith('_resize'):
                index = int(parts[2][len('resource'):-len('_resize')])
                return f'{device.bars[index]["mask"]:016x}\n'
        raise KernelError(errno.EACCES)  # write-only attributes

    def control(self, command):
        operation = command['op']
        with self.lock:
            if operation == 'fault':
                self.faults.append({k: v for k, v in command.items() if k != 'op'})
            elif operation == 'clear-faults':
                self.faults.clear()
            elif operation == 'release-hung':
                self.release.set()
            elif operation == 'load-driver':
                if command['driver'] not in self.drivers:
                    self.add_driver(command['driver'])
                    # bus_add_driver(): the driver's kobject is announced, subsystem "drivers".
                    self.events.send('add', f'/bus/pci/drivers/{command["driver"]}', 'drivers', {})
            elif operation == 'remove-device':
                self.remove_device(self.devices[command['device']])
            elif operation == 'window':
                # What the bridge window above 4 GiB has room for (firmware, other devices).
                self.devices[command['device']].window = parse_size(command['size'])
            elif operation == 'firmware-places-bars':
                # A reboot with "Above 4G Decoding" switched: the BARs below or above 4 GiB.
                device = self.devices[command['device']]
                device.below_4g = command['below_4g']
                device.window = 256 * MIB if device.below_4g else None
                for bar in device.bars.values():   # no 16G BAR fits below 4 GiB
                    if device.below_4g and bar['mask']:
                        bar['size'] = min(bar['size'], 256 * MIB)
                self.write_resource_file(device)
            elif operation == 'rescan':
                self.rescan()
            elif operation == 'latency':
                self.latency_enabled = bool(command['enabled'])
            else:
                raise KernelError(errno.EINVAL)

    def kernel_paths(self):
        """Every file of the FUSE mount, for getattr and readdir."""
        files = {'/control': 0o600, '/drivers_probe': 0o200}
        for driver in self.drivers:
            for attribute in WRITE_ONLY_DRIVER_FILES:
                files[f'/drivers/{driver}/{attribute}'] = 0o200
        for address, device in self.devices.items():
            files[f'/devices/{address}/driver_override'] = 0o644
            for index, bar in device.bars.items():
                if bar['mask']:
                    files[f'/devices/{address}/resource{index}_resize'] = 0o644
        return files


class KernelFs(fuse.Fuse):
    """Serves FakeKernel's attribute files. Multithreaded: a write held for its modelled
    time does not hold up reads of other attributes."""

    def __init__(self, kernel, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.kernel = kernel

    def getattr(self, path):
        st = fuse.Stat()
        st.st_uid = st.st_gid = st.st_ino = st.st_dev = 0
        st.st_atime = st.st_mtime = st.st_ctime = 0
        files = self.kernel.kernel_paths()
        if path in files:
            st.st_mode, st.st_nlink, st.st_size = stat.S_IFREG | files[path], 1, 4096
            return st
        if path == '/' or any(f.startswith(path + '/') for f in files):
            st.st_mode, st.st_nlink, st.st_size = stat.S_IFDIR | 0o755, 2, 0
            return st
        return -errno.ENOENT

    def readdir(self, path, offset):
        prefix = '' if path == '/' else path
        names = {f[len(prefix) + 1:].split('/', 1)[0] for f in self.kernel.kernel_paths()
                 if f.startswith(prefix + '/')}
        for name in ['.', '..'] + sorted(names):
            yield fuse.Direntry(name)

    def open(self, path, flags):
        return 0 if path in self.kernel.kernel_paths() else -errno.ENOENT

    def truncate(self, path, size):
        return 0  # O_TRUNC on an attribute: nothing to cut

    def read(self, path, size, offset):
        try:
            data = self.kernel.read_file(path).encode()
        except KernelError as e:
            return -e.code
        return data[offset:offset + size]

    def write(self, path, buf, offset):
        value = buf.decode(errors='replace')
        started = time.monotonic()
        try:
            self.kernel.handle_write(path, value)
            result = 'ok'
            answer = len(buf)
        except KernelError as e:
            result = errno.errorcode[e.code]
            answer = -e.code
        except Exception as e:  # a bug here must show as a failed write, not a hung one
            print(f'fake kernel: {path}: {e!r}', file=sys.stderr, flush=True)
            traceback.print_exc()
            result, answer = 'EIO', -errno.EIO
        if path != '/control':
            with self.kernel.lock:
                self.kernel.writes.append({'path': path, 'value': value, 'result': result,
                                           'held_ms': (time.monotonic() - started) * 1000})
        return answer


def refuse_real_sysfs():
    """Only where the harness hid the real /sys: it must be an empty directory here."""
    if os.listdir('/sys'):
        sys.exit('fake_kernel.py: /sys is not the empty tmpfs of the harness namespace; refusing to run')


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--machine', required=True)
    parser.add_argument('--testbed', required=True)
    parser.add_argument('--latency', action='store_true', help='hold writes for the modelled times')
    args = parser.parse_args()
    refuse_real_sysfs()
    with open(args.machine) as f:
        machine = json.load(f)
    kernel = FakeKernel(machine, args.testbed, args.latency)
    os.makedirs(kernel.fuse_dir)
    kernel.build()

    server = KernelFs(kernel, dash_s_do='setsingle')
    server.parse([kernel.fuse_dir, '-f', '-o', 'direct_io,allow_other'], errex=1)

    def announce_when_mounted():
        while not os.path.exists(os.path.join(kernel.fuse_dir, 'control')):
            time.sleep(0.005)
        print('READY', flush=True)

    threading.Thread(target=announce_when_mounted, daemon=True).start()
    # libfuse unmounts and returns on SIGTERM; a write hung by a fault then fails with
    # ENOTCONN when the harness ends this process.
    server.main()


if __name__ == '__main__':
    main()
