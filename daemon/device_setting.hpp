// SPDX-License-Identifier: GPL-2.0-or-later
#pragma once

#include "pci_device.hpp"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <map>
#include <string>

namespace gpuswap {

// What a hand-over changes on one device, and so what it records to restore.
struct DeviceSetting {
    std::string driver;          // "" = no driver
    std::string driverOverride;  // "" = none
    std::map<unsigned, uint64_t> barSizes{};  // only the BARs an operation touches
    // It had a DRM card node: probing its driver back waits for the node too (older
    // nvidia-drm makes none for a GPU bound after it loaded, so no node is no wait).
    bool cardNode = false;
    bool operator==(const DeviceSetting&) const = default;
};

// The device's setting now, with the sizes of the given BARs.
DeviceSetting currentSetting(const PciDevice& device, const std::map<unsigned, uint64_t>& barsOfInterest = {});
uint64_t barSize(const PciDevice& device, unsigned index);

nlohmann::json toJson(const DeviceSetting& setting);
DeviceSetting settingFromJson(const nlohmann::json& json);

} // namespace gpuswap
