// SPDX-License-Identifier: GPL-2.0-or-later
#pragma once

#include "device_adaptor.h"
#include "pci_device.hpp"

#include <sdbus-c++/sdbus-c++.h>

#include <string>
#include <vector>

namespace gpuswap {

using DeviceInterfaces =
    sdbus::AdaptorInterfaces<org::gpuswap1::Device_adaptor, sdbus::Properties_adaptor, sdbus::ManagedObject_adaptor>;

// /org/gpuswap1/device/pci_DDDD_BB_DD_F: one tracked PCI device on the bus.
class DeviceObject final : public DeviceInterfaces {
public:
    DeviceObject(sdbus::IConnection& connection, const PciDevice& device);
    ~DeviceObject();
    DeviceObject(const DeviceObject&) = delete;
    DeviceObject& operator=(const DeviceObject&) = delete;

    void update(const PciDevice& device, const std::vector<std::string>& changedProperties);

private:
    std::string Address() override { return device_.address.str(); }
    uint16_t VendorId() override { return device_.vendorId; }
    uint16_t DeviceId() override { return device_.deviceId; }
    uint32_t Class() override { return device_.classCode; }
    std::string Driver() override { return device_.driver; }
    std::string DriverOverride() override { return device_.driverOverride; }
    int32_t IommuGroup() override { return device_.iommuGroup; }
    bool BootVga() override { return device_.bootVga; }
    std::vector<sdbus::Struct<uint32_t, uint64_t, uint64_t>> Bars() override;
    std::vector<std::string> DrmNodes() override { return device_.drmNodes; }

    PciDevice device_;
};

} // namespace gpuswap
