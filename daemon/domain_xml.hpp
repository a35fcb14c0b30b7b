// SPDX-License-Identifier: GPL-2.0-or-later
#pragma once

#include "pci_address.hpp"

#include <string_view>
#include <vector>

namespace gpuswap {

// The PCI devices a libvirt domain passes through: the source addresses of its
// <hostdev mode='subsystem' type='pci'> elements, in document order.
// Throws Failure(InvalidArgument) for XML that does not parse or a malformed address.
std::vector<PciAddress> pciHostdevsOfDomain(std::string_view domainXml);

} // namespace gpuswap
