// SPDX-License-Identifier: GPL-2.0-or-later
#pragma once

#include "pci_device.hpp"

#include <map>
#include <set>
#include <string>
#include <vector>

namespace gpuswap {

// The D-Bus property names of org.gpuswap1.Device whose values differ.
std::vector<std::string> changedDeviceProperties(const PciDevice& before, const PciDevice& after);

// The tracked PCI devices and their last known state. Re-reads sysfs when told that
// something happened (a udev event, a new configuration) and reports the difference.
class DeviceRegistry {
public:
    class Listener {
    public:
        virtual void deviceAdded(const PciDevice& device) = 0;
        virtual void deviceChanged(const PciDevice& device, const std::vector<std::string>& properties) = 0;
        virtual void deviceRemoved(const PciAddress& address) = 0;

    protected:
        ~Listener() = default;
    };

    DeviceRegistry(const Sysfs& sysfs, Listener& listener) : sysfs_(sysfs), listener_(listener) {}

    // Devices named in profiles are tracked even when they are no display function.
    void setProfileDevices(std::set<PciAddress> addresses);
    // Everything again: devices added, removed, re-classified.
    void rescan();
    // One device again, after an event about it (or about its DRM or sound children).
    void refresh(const PciAddress& address);

    const std::map<PciAddress, PciDevice>& devices() const { return devices_; }

private:
    void update(const PciDevice& now);

    const Sysfs& sysfs_;
    Listener& listener_;
    std::set<PciAddress> profileDevices_;
    std::map<PciAddress, PciDevice> devices_;
};

} // namespace gpuswap
