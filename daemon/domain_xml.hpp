// SPDX-License-Identifier: GPL-2.0-or-later
#pragma once

#include "config.hpp"
#include "pci_address.hpp"

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace gpuswap {

// The PCI devices a libvirt domain passes through: the source addresses of its
// <hostdev mode='subsystem' type='pci'> elements, in document order.
// Throws Failure(InvalidArgument) for XML that does not parse or a malformed address.
std::vector<PciAddress> pciHostdevsOfDomain(std::string_view domainXml);

// The XML namespace of a profile kept in the domain's <metadata> (virsh edit, virt-manager):
//   <gpuswap:profile xmlns:gpuswap="https://gpuswap.org/xmlns/profile/1">
//     <gpuswap:display_manager>restart</gpuswap:display_manager>
//     <gpuswap:holders>wait</gpuswap:holders>
//     <gpuswap:bar device="0000:03:00.0" index="0" size="8G"/>
//     <gpuswap:stop_unit>nvidia-persistenced.service</gpuswap:stop_unit>
//   </gpuswap:profile>
inline constexpr std::string_view kProfileNamespace = "https://gpuswap.org/xmlns/profile/1";

// The profile in the domain's metadata, checked by the configuration file's rules (devices
// come from the hostdevs); nullopt when there is none. Throws Failure(BadConfig) with the
// configuration's kind of message for a malformed one.
std::optional<VmProfile> profileOfDomain(std::string_view domainXml, const std::string& vm);

} // namespace gpuswap
