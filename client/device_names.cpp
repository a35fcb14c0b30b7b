// SPDX-License-Identifier: GPL-2.0-or-later
#include "device_names.hpp"

#include <libudev.h>

#include <memory>

namespace gpuswap::client {

DeviceName deviceName(const std::string& address)
{
    const std::unique_ptr<udev, decltype(&udev_unref)> context(udev_new(), &udev_unref);
    if (!context)
        return {};
    const std::unique_ptr<udev_device, decltype(&udev_device_unref)> device(
        udev_device_new_from_subsystem_sysname(context.get(), "pci", address.c_str()), &udev_device_unref);
    if (!device)
        return {};
    const auto property = [&](const char* key) {
        const char* value = udev_device_get_property_value(device.get(), key);
        return std::string(value != nullptr ? value : "");
    };
    return {property("ID_VENDOR_FROM_DATABASE"), property("ID_MODEL_FROM_DATABASE")};
}

} // namespace gpuswap::client
