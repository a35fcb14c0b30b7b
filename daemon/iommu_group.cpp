// SPDX-License-Identifier: GPL-2.0-or-later
#include "iommu_group.hpp"

namespace gpuswap {

std::vector<PciDevice> viabilityBlockers(const std::vector<PciDevice>& present, const std::set<PciAddress>& handedOver)
{
    std::set<int> groups;
    for (const PciDevice& device : present)
        if (handedOver.contains(device.address) && device.iommuGroup >= 0)
            groups.insert(device.iommuGroup);
    std::vector<PciDevice> blockers;
    for (const PciDevice& device : present) {
        if (!groups.contains(device.iommuGroup) || handedOver.contains(device.address))
            continue;
        // The kernel's rule: no driver, or one that leaves DMA to VFIO (driver_managed_dma:
        // vfio-pci and its variant drivers, pci-stub, pcieport); bridges by header type.
        const std::string& driver = device.driver;
        const bool harmless = driver.empty() || driver == "vfio-pci" || driver.ends_with("-vfio-pci") ||
                              driver == "pci-stub" || driver == "pcieport" || device.isPciBridge();
        if (!harmless)
            blockers.push_back(device);
    }
    return blockers;
}

std::string viableDevicesLine(const std::set<PciAddress>& handedOver, const std::vector<PciDevice>& blockers)
{
    std::set<PciAddress> devices = handedOver;
    for (const PciDevice& blocker : blockers)
        devices.insert(blocker.address);
    std::string line = "\"devices\": [";
    for (const PciAddress& address : devices)
        line += (line.ends_with("[") ? "\"" : ", \"") + address.str() + "\"";
    return line + "]";
}

} // namespace gpuswap
