// SPDX-License-Identifier: GPL-2.0-or-later
#pragma once

#include <string>

namespace gpuswap::client {

// What udev's hardware database calls a PCI device (ID_VENDOR_FROM_DATABASE,
// ID_MODEL_FROM_DATABASE in udev's record of the device); empty when udev has none.
struct DeviceName {
    std::string vendor;
    std::string model;
};

DeviceName deviceName(const std::string& address);

} // namespace gpuswap::client
