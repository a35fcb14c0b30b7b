// SPDX-License-Identifier: GPL-2.0-or-later
#include "device_setting.hpp"

#include <algorithm>

namespace gpuswap {

uint64_t barSize(const PciDevice& device, unsigned index)
{
    for (const PciBar& bar : device.bars)
        if (bar.index == index)
            return bar.size;
    return 0;
}

DeviceSetting currentSetting(const PciDevice& device, const std::map<unsigned, uint64_t>& barsOfInterest)
{
    DeviceSetting setting{device.driver, device.driverOverride};
    setting.cardNode = std::any_of(device.drmNodes.begin(), device.drmNodes.end(),
                                   [](const std::string& node) { return node.starts_with("/dev/dri/card"); });
    for (const auto& [index, unused] : barsOfInterest)
        setting.barSizes[index] = barSize(device, index);
    return setting;
}

nlohmann::json toJson(const DeviceSetting& setting)
{
    nlohmann::json bars = nlohmann::json::object();
    for (const auto& [index, size] : setting.barSizes)
        bars[std::to_string(index)] = size;
    return {{"driver", setting.driver}, {"override", setting.driverOverride}, {"bars", bars}, {"card_node", setting.cardNode}};
}

DeviceSetting settingFromJson(const nlohmann::json& json)
{
    DeviceSetting setting{json.at("driver").get<std::string>(), json.at("override").get<std::string>()};
    for (const auto& [index, size] : json.at("bars").items())
        setting.barSizes[static_cast<unsigned>(std::stoul(index))] = size.get<uint64_t>();
    setting.cardNode = json.value("card_node", false);  // absent in journals of older versions
    return setting;
}

} // namespace gpuswap
