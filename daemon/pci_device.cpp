// SPDX-License-Identifier: GPL-2.0-or-later
#include "pci_device.hpp"

#include "bar_size.hpp"

#include <algorithm>
#include <charconv>
#include <fstream>
#include <sstream>
#include <system_error>

namespace gpuswap {

namespace fs = std::filesystem;

namespace {

// IORESOURCE_MEM in the flags column of the kernel's "resource" file.
constexpr uint64_t kIoResourceMem = 0x200;

template <typename Number>
Number parseNumber(const std::optional<std::string>& text, int base)
{
    if (!text)
        return 0;
    std::string_view digits = *text;
    if (base == 16 && digits.starts_with("0x"))
        digits.remove_prefix(2);
    Number value{};
    std::from_chars(digits.data(), digits.data() + digits.size(), value, base);
    return value;
}

std::string linkTargetName(const fs::path& link)
{
    std::error_code error;
    const fs::path target = fs::read_symlink(link, error);
    return error ? std::string() : target.filename().string();
}

// The resizable-BAR masks from resourceN_resize, or (locked) from what was read before.
std::vector<PciBar> readBars(const fs::path& device, bool locked, const PciDevice* known, std::vector<unsigned>& below4G)
{
    constexpr uint64_t k4GiB = uint64_t{1} << 32;
    std::vector<PciBar> bars;
    std::ifstream resource(device / "resource");
    std::string line;
    for (unsigned index = 0; index < 6 && std::getline(resource, line); ++index) {
        std::istringstream fields(line);
        std::string start;
        std::string end;
        std::string flags;
        fields >> start >> end >> flags;
        const auto first = parseNumber<uint64_t>(start, 16);
        const auto last = parseNumber<uint64_t>(end, 16);
        if (last <= first || (parseNumber<uint64_t>(flags, 16) & kIoResourceMem) == 0)
            continue;
        uint64_t mask = 0;
        if (!locked) {
            mask = parseNumber<uint64_t>(readAttribute(device / ("resource" + std::to_string(index) + "_resize")), 16);
        } else if (known != nullptr) {
            for (const PciBar& bar : known->bars)
                if (bar.index == index)
                    mask = bar.supportedMask;
        }
        bars.push_back({index, last - first + 1, mask});
        if (first < k4GiB)
            below4G.push_back(index);
    }
    return bars;
}

std::vector<std::string> readDrmNodes(const fs::path& device)
{
    std::vector<std::string> nodes;
    std::error_code error;
    for (const auto& entry : fs::directory_iterator(device / "drm", error)) {
        const std::string name = entry.path().filename().string();
        if (name.starts_with("card") || name.starts_with("renderD"))
            nodes.push_back("/dev/dri/" + name);
    }
    std::sort(nodes.begin(), nodes.end());
    return nodes;
}

std::optional<uint8_t> readHeaderType(const fs::path& config)
{
    std::ifstream file(config, std::ios::binary);
    char header[15] = {};
    if (!file.read(header, sizeof header))
        return std::nullopt;
    return static_cast<uint8_t>(static_cast<uint8_t>(header[14]) & 0x7fU);
}

// drm/cardN/cardN-DP-1/enabled says "enabled" while a CRTC scans out through the
// connector (drivers/gpu/drm/drm_sysfs.c, enabled_show).
std::vector<std::string> readEnabledConnectors(const fs::path& device)
{
    std::vector<std::string> connectors;
    std::error_code error;
    for (const auto& card : fs::directory_iterator(device / "drm", error)) {
        const std::string cardName = card.path().filename().string();
        if (!cardName.starts_with("card"))
            continue;
        std::error_code inner;
        for (const auto& connector : fs::directory_iterator(card.path(), inner)) {
            const std::string name = connector.path().filename().string();
            if (name.starts_with(cardName + "-") && readAttribute(connector.path() / "enabled") == "enabled")
                connectors.push_back(name);
        }
    }
    std::sort(connectors.begin(), connectors.end());
    return connectors;
}

// NVIDIA's driver makes no sysfs node for /dev/nvidiaN; it names the minor in
// /proc/driver/nvidia/gpus/<address>/information ("Device Minor: 0").
std::string readNvidiaNode(const fs::path& proc, const PciAddress& address)
{
    std::ifstream information(proc / "driver/nvidia/gpus" / address.str() / "information");
    std::string line;
    while (std::getline(information, line)) {
        if (!line.starts_with("Device Minor:"))
            continue;
        const auto minor = line.find_first_of("0123456789");
        if (minor != std::string::npos)
            return "/dev/nvidia" + std::to_string(parseNumber<unsigned>(line.substr(minor), 10));
    }
    return {};
}

} // namespace

std::optional<std::string> readAttribute(const fs::path& path)
{
    std::ifstream file(path);
    if (!file)
        return std::nullopt;
    std::string value;
    std::getline(file, value);
    while (!value.empty() && (value.back() == '\n' || value.back() == ' '))
        value.pop_back();
    return value;
}

fs::path Sysfs::devicePath(const PciAddress& address) const { return root_ / "bus/pci/devices" / address.str(); }

fs::path Sysfs::driverPath(const std::string& driver) const { return root_ / "bus/pci/drivers" / driver; }

std::optional<std::string> cannotGrow(const PciDevice& device, unsigned index, uint64_t size)
{
    const auto bar = std::find_if(device.bars.begin(), device.bars.end(), [index](const PciBar& b) { return b.index == index; });
    if (bar == device.bars.end() || size <= bar->size ||
        std::find(device.barsBelow4G.begin(), device.barsBelow4G.end(), index) == device.barsBelow4G.end())
        return std::nullopt;
    return "BAR " + std::to_string(index) + " of " + device.address.str() + " sits below 4 GiB, where there is no room "
           "for it to grow to " + formatSize(size) + ": enable \"Above 4G Decoding\" (and Resizable BAR) in the "
           "firmware setup, or leave the BAR at " + formatSize(bar->size);
}

std::vector<PciAddress> Sysfs::listPciDevices() const
{
    std::vector<PciAddress> addresses;
    std::error_code error;
    for (const auto& entry : fs::directory_iterator(root_ / "bus/pci/devices", error))
        if (auto address = PciAddress::parse(entry.path().filename().string()))
            addresses.push_back(*address);
    std::sort(addresses.begin(), addresses.end());
    return addresses;
}

std::optional<PciDevice> Sysfs::readDevice(const PciAddress& address) const
{
    const fs::path path = devicePath(address);
    const auto vendor = readAttribute(path / "vendor");
    if (!vendor)
        return std::nullopt;
    PciDevice device{.address = address};
    device.vendorId = parseNumber<uint16_t>(vendor, 16);
    device.deviceId = parseNumber<uint16_t>(readAttribute(path / "device"), 16);
    device.classCode = parseNumber<uint32_t>(readAttribute(path / "class"), 16);
    device.driver = linkTargetName(path / "driver");
    const auto last = lastRead_.find(address);
    const PciDevice* known = last != lastRead_.end() ? &last->second : nullptr;
    const bool locked = locks_ != nullptr && locks_->held(address);
    if (locked) {
        device.driverOverride = known != nullptr ? known->driverOverride : std::string();
    } else {
        const auto override = readAttribute(path / "driver_override");
        device.driverOverride = (!override || *override == "(null)") ? std::string() : *override;
    }
    const std::string group = linkTargetName(path / "iommu_group");
    device.iommuGroup = group.empty() ? -1 : parseNumber<int>(group, 10);
    device.bootVga = readAttribute(path / "boot_vga") == "1";
    device.headerType = readHeaderType(path / "config");
    device.bars = readBars(path, locked, known, device.barsBelow4G);
    device.drmNodes = readDrmNodes(path);
    device.enabledConnectors = readEnabledConnectors(path);
    if (device.driver == "nvidia")
        device.nvidiaNode = readNvidiaNode(proc_, address);
    lastRead_.insert_or_assign(address, device);
    return device;
}

std::vector<PciDevice> Sysfs::readAllDevices() const
{
    std::vector<PciDevice> devices;
    for (const PciAddress& address : listPciDevices())
        if (auto device = readDevice(address))
            devices.push_back(std::move(*device));
    return devices;
}

std::vector<PciAddress> Sysfs::iommuGroupMembers(int group) const
{
    std::vector<PciAddress> members;
    std::error_code error;
    for (const auto& entry : fs::directory_iterator(root_ / "kernel/iommu_groups" / std::to_string(group) / "devices", error))
        if (auto address = PciAddress::parse(entry.path().filename().string()))
            members.push_back(*address);
    std::sort(members.begin(), members.end());
    return members;
}

bool Sysfs::hasDriver(const std::string& driver) const
{
    std::error_code error;
    return fs::is_directory(driverPath(driver), error);
}

bool Sysfs::hasIommuGroups() const
{
    std::error_code error;
    fs::directory_iterator groups(root_ / "kernel/iommu_groups", error);
    return !error && groups != fs::directory_iterator();
}

std::set<PciAddress> selectTrackedDevices(const std::vector<PciDevice>& present,
                                          const std::set<PciAddress>& profileDevices)
{
    std::set<std::string_view> displaySlots;
    std::set<int> displayGroups;
    for (const PciDevice& device : present) {
        if (!device.isDisplayController())
            continue;
        displaySlots.insert(device.address.slot());
        if (device.iommuGroup >= 0)
            displayGroups.insert(device.iommuGroup);
    }
    std::set<PciAddress> tracked;
    for (const PciDevice& device : present)
        if (displaySlots.contains(device.address.slot()) || displayGroups.contains(device.iommuGroup) ||
            profileDevices.contains(device.address))
            tracked.insert(device.address);
    return tracked;
}

} // namespace gpuswap
