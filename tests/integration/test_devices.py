#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""gpuswapd's Device objects on the simulated machines: what the bus shows follows the kernel."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'sim'))
from simharness import Manager, case, main  # noqa: E402

GIB = 1 << 30
MIB = 1 << 20
RX6800 = '0000:03:00.0'
RX6800_AUDIO = '0000:03:00.1'
IGPU = '0000:00:02.0'


def path_of(address):
    return '/org/gpuswap1/device/pci_' + address.replace(':', '_').replace('.', '_')


@case(machine='z790-rx6800')
def tree_lists_each_tracked_device(sim):
    objects = Manager(sim.bus).managed_objects()
    # display controllers and their slot and IOMMU group mates; not the NVMe, USB or bridges elsewhere
    assert sorted(objects) == sorted(path_of(a) for a in (IGPU, RX6800, RX6800_AUDIO)), sorted(objects)
    gpu = objects[path_of(RX6800)]['org.gpuswap1.Device']
    assert gpu['Address'] == RX6800
    assert (gpu['VendorId'], gpu['DeviceId'], gpu['Class']) == (0x1002, 0x73bf, 0x030000), gpu
    assert gpu['Driver'] == 'amdgpu' and gpu['DriverOverride'] == ''
    assert gpu['IommuGroup'] == 14 and gpu['BootVga'] is False
    assert gpu['Bars'] == [(0, 16 * GIB, 0x7f00), (2, 256 * MIB, 0x1fe), (5, 1 * MIB, 0)], gpu['Bars']
    assert gpu['DrmNodes'] == ['/dev/dri/card1', '/dev/dri/renderD129'], gpu['DrmNodes']
    igpu = objects[path_of(IGPU)]['org.gpuswap1.Device']
    assert igpu['BootVga'] is True and igpu['Driver'] == 'i915'
    assert objects[path_of(RX6800_AUDIO)]['org.gpuswap1.Device']['Driver'] == 'snd_hda_intel'


@case(machine='z790-rx6800')
def rebind_to_vfio_shows_in_properties(sim):
    changes = sim.bus.subscribe('org.gpuswap1', 'org.freedesktop.DBus.Properties', 'PropertiesChanged',
                                path_of(RX6800))
    manager = Manager(sim.bus)

    def driver_signalled(value):
        return any(args[0] == 'org.gpuswap1.Device' and args[1].get('Driver') == value for _, _, args in changes)

    sim.sysfs_write(f'bus/pci/devices/{RX6800}/driver_override', 'vfio-pci')
    sim.sysfs_write('bus/pci/drivers/amdgpu/unbind', RX6800)
    # Properties show sysfs as it is when udev reports: wait for the unbind before the probe.
    assert sim.bus.wait_until(lambda: driver_signalled('')), changes
    sim.sysfs_write('bus/pci/drivers_probe', RX6800)
    assert sim.bus.wait_until(lambda: driver_signalled('vfio-pci')), changes
    assert manager.device(RX6800, 'Driver') == 'vfio-pci'
    assert manager.device(RX6800, 'DriverOverride') == 'vfio-pci'
    assert manager.device(RX6800, 'DrmNodes') == []

    # and back to the host driver
    sim.sysfs_write(f'bus/pci/devices/{RX6800}/driver_override', '\n')
    sim.sysfs_write('bus/pci/drivers/vfio-pci/unbind', RX6800)
    sim.sysfs_write('bus/pci/drivers_probe', RX6800)
    assert sim.bus.wait_until(lambda: manager.device(RX6800, 'Driver') == 'amdgpu')
    assert sim.bus.wait_until(lambda: len(manager.device(RX6800, 'DrmNodes')) == 2)
    assert manager.device(RX6800, 'DriverOverride') == ''


@case(machine='z790-rx6800')
def removed_and_rescanned_device_comes_and_goes(sim):
    added = sim.bus.subscribe('org.gpuswap1', 'org.freedesktop.DBus.ObjectManager', 'InterfacesAdded')
    removed = sim.bus.subscribe('org.gpuswap1', 'org.freedesktop.DBus.ObjectManager', 'InterfacesRemoved')
    sim.kernel(op='remove-device', device=RX6800_AUDIO)
    assert sim.bus.wait_until(lambda: any(args[0] == path_of(RX6800_AUDIO) for _, _, args in removed)), removed
    assert path_of(RX6800_AUDIO) not in Manager(sim.bus).managed_objects()
    sim.kernel(op='rescan')
    assert sim.bus.wait_until(lambda: any(args[0] == path_of(RX6800_AUDIO) for _, _, args in added)), added
    assert sim.bus.wait_until(lambda: Manager(sim.bus).device(RX6800_AUDIO, 'Driver') == 'snd_hda_intel')


if __name__ == '__main__':
    main()
