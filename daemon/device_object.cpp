#include "device_object.hpp"

namespace gpuswap {

DeviceObject::DeviceObject(sdbus::IConnection& connection, const PciDevice& device)
    : DeviceInterfaces(connection, device.address.objectPath()), device_(device)
{
    registerAdaptor();
    emitInterfacesAddedSignal({org::gpuswap1::Device_adaptor::INTERFACE_NAME});
}

DeviceObject::~DeviceObject()
{
    emitInterfacesRemovedSignal({org::gpuswap1::Device_adaptor::INTERFACE_NAME});
    unregisterAdaptor();
}

void DeviceObject::update(const PciDevice& device, const std::vector<std::string>& changedProperties)
{
    device_ = device;
    emitPropertiesChangedSignal(org::gpuswap1::Device_adaptor::INTERFACE_NAME, changedProperties);
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
