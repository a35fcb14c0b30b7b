// SPDX-License-Identifier: GPL-2.0-or-later
#include "device_object.hpp"

#include "bus_guard.hpp"

namespace gpuswap {

DeviceObject::DeviceObject(sdbus::IConnection& connection, const PciDevice& device)
    : DeviceInterfaces(connection, sdbus::ObjectPath{device.address.objectPath()}), device_(device)
{
    registerAdaptor();
    sendSafely("InterfacesAdded of " + device_.address.str(), [this] { emitInterfacesAddedSignal(bus::interfaceNames({org::gpuswap1::Device_adaptor::INTERFACE_NAME})); });
}

DeviceObject::~DeviceObject()
{
    sendSafely("InterfacesRemoved of " + device_.address.str(),
               [this] { emitInterfacesRemovedSignal(bus::interfaceNames({org::gpuswap1::Device_adaptor::INTERFACE_NAME})); });
    unregisterAdaptor();
}

void DeviceObject::update(const PciDevice& device, const std::vector<std::string>& changedProperties)
{
    device_ = device;
    sendSafely("PropertiesChanged of " + device_.address.str(), [&] {
        emitPropertiesChangedSignal(bus::InterfaceName{org::gpuswap1::Device_adaptor::INTERFACE_NAME},
                                    bus::propertyNames(changedProperties));
    });
}

std::vector<sdbus::Struct<uint32_t, uint64_t, uint64_t>> DeviceObject::Bars()
{
    std::vector<sdbus::Struct<uint32_t, uint64_t, uint64_t>> bars;
    bars.reserve(device_.bars.size());
    for (const PciBar& bar : device_.bars)
        bars.emplace_back(bar.index, bar.size, bar.supportedMask);
    return bars;
}

} // namespace gpuswap
