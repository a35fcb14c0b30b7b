// SPDX-License-Identifier: GPL-2.0-or-later
#include "device_registry.hpp"

namespace gpuswap {

std::vector<std::string> changedDeviceProperties(const PciDevice& before, const PciDevice& after)
{
    std::vector<std::string> names;
    if (before.driver != after.driver)
        names.emplace_back("Driver");
    if (before.driverOverride != after.driverOverride)
        names.emplace_back("DriverOverride");
    if (before.iommuGroup != after.iommuGroup)
        names.emplace_back("IommuGroup");
    if (before.bootVga != after.bootVga)
        names.emplace_back("BootVga");
    if (before.bars != after.bars)
        names.emplace_back("Bars");
    if (before.drmNodes != after.drmNodes)
        names.emplace_back("DrmNodes");
    return names;
}

void DeviceRegistry::setProfileDevices(std::set<PciAddress> addresses)
{
    profileDevices_ = std::move(addresses);
    rescan();
}

void DeviceRegistry::rescan()
{
    const std::vector<PciDevice> present = sysfs_.readAllDevices();
    const std::set<PciAddress> tracked = selectTrackedDevices(present, profileDevices_);

    for (auto it = devices_.begin(); it != devices_.end();) {
        if (tracked.contains(it->first)) {
            ++it;
            continue;
        }
        const PciAddress gone = it->first;
        it = devices_.erase(it);
        listener_.deviceRemoved(gone);
    }
    for (const PciDevice& device : present)
        if (tracked.contains(device.address))
            update(device);
}

void DeviceRegistry::refresh(const PciAddress& address)
{
    if (!devices_.contains(address))
        return;
    auto now = sysfs_.readDevice(address);
    if (!now) {
        rescan();
        return;
    }
    update(*now);
}

void DeviceRegistry::update(const PciDevice& now)
{
    const auto it = devices_.find(now.address);
    if (it == devices_.end()) {
        devices_.emplace(now.address, now);
        listener_.deviceAdded(now);
        return;
    }
    const std::vector<std::string> changed = changedDeviceProperties(it->second, now);
    if (changed.empty())
        return;
    it->second = now;
    listener_.deviceChanged(now, changed);
}

} // namespace gpuswap
