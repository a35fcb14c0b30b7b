// SPDX-License-Identifier: GPL-2.0-or-later
#pragma once

#include "pci_device.hpp"

#include <set>
#include <string>
#include <vector>

namespace gpuswap {

// VFIO can only use an IOMMU group whose every member is handed over, is a PCI
// bridge, has no driver, or sits on vfio-pci or pci-stub. Binding one function
// alone succeeds in the kernel but leaves the group unusable, so check first.
// Returns the members that keep a group of `handedOver` from being viable.
std::vector<PciDevice> viabilityBlockers(const std::vector<PciDevice>& present, const std::set<PciAddress>& handedOver);

// The profile line that hands over the blockers too:
// "devices": ["0000:01:00.0", "0000:01:00.1", "0000:01:00.2", "0000:01:00.3"]
std::string viableDevicesLine(const std::set<PciAddress>& handedOver, const std::vector<PciDevice>& blockers);

} // namespace gpuswap
