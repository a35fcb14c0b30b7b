// SPDX-License-Identifier: GPL-2.0-or-later
#include "fake_sysfs.hpp"

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <stdexcept>
#include <tuple>

namespace gpuswap::testing {

namespace fs = std::filesystem;

namespace {

void writeFile(const fs::path& path, const std::string& text)
{
    std::ofstream(path) << text;
}

std::string hex(uint64_t value, int width)
{
    char buffer[32];
    std::snprintf(buffer, sizeof buffer, "0x%0*llx", width, static_cast<unsigned long long>(value));
    return buffer;
}

} // namespace

FakeSysfs::FakeSysfs()
{
    std::string pattern = (fs::temp_directory_path() / "fake-sysfs.XXXXXX").string();
    if (mkdtemp(pattern.data()) == nullptr)
        throw std::runtime_error("mkdtemp failed");
    root_ = pattern;
    fs::create_directories(root_ / "bus/pci/devices");
    fs::create_directories(root_ / "bus/pci/drivers");
    fs::create_directories(root_ / "devices/pci0000:00");
    fs::create_directories(root_ / "kernel/iommu_groups");
}

FakeSysfs::~FakeSysfs()
{
    std::error_code ignored;
    fs::remove_all(root_, ignored);
}

fs::path FakeSysfs::deviceDir(const std::string& address) const { return root_ / "devices/pci0000:00" / address; }

void FakeSysfs::add(const Device& device)
{
    const fs::path dir = deviceDir(device.address);
    fs::create_directories(dir);
    writeFile(dir / "vendor", hex(device.vendor, 4) + "\n");
    writeFile(dir / "device", hex(device.device, 4) + "\n");
    writeFile(dir / "class", hex(device.classCode, 6) + "\n");
    writeFile(dir / "driver_override", (device.driverOverride.empty() ? "(null)" : device.driverOverride) + "\n");
    writeFile(dir / "boot_vga", device.bootVga ? "1\n" : "0\n");
    std::string resource;
    uint64_t base = 0x4000000000;
    for (unsigned index = 0; index < 13; ++index) {
        std::string line = "0x0000000000000000 0x0000000000000000 0x0000000000000000\n";
        for (const auto& [barIndex, size, mask] : device.bars) {
            if (barIndex != index)
                continue;
            line = hex(base, 16) + " " + hex(base + size - 1, 16) + " " + hex(0x14220c, 16) + "\n";
            base += size;
            if (mask != 0)
                writeFile(dir / ("resource" + std::to_string(index) + "_resize"), hex(mask, 16).substr(2) + "\n");
        }
        resource += line;
    }
    writeFile(dir / "resource", resource);
    if (device.iommuGroup >= 0) {
        const fs::path group = root_ / "kernel/iommu_groups" / std::to_string(device.iommuGroup);
        fs::create_directories(group / "devices");
        fs::create_symlink("../../../kernel/iommu_groups/" + std::to_string(device.iommuGroup), dir / "iommu_group");
    }
    for (const std::string& node : device.drmNodes)
        fs::create_directories(dir / "drm" / node);
    fs::create_directory_symlink("../../../devices/pci0000:00/" + device.address,
                                 root_ / "bus/pci/devices" / device.address);
    if (!device.driver.empty())
        bind(device.address, device.driver);
}

void FakeSysfs::remove(const std::string& address)
{
    fs::remove(root_ / "bus/pci/devices" / address);
    fs::remove_all(deviceDir(address));
}

void FakeSysfs::addDriver(const std::string& driver) { fs::create_directories(root_ / "bus/pci/drivers" / driver); }

void FakeSysfs::bind(const std::string& address, const std::string& driver)
{
    addDriver(driver);
    fs::create_directory_symlink("../../../bus/pci/drivers/" + driver, deviceDir(address) / "driver");
}

void FakeSysfs::unbind(const std::string& address) { fs::remove(deviceDir(address) / "driver"); }

} // namespace gpuswap::testing
