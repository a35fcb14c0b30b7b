// SPDX-License-Identifier: GPL-2.0-or-later
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace gpuswap::testing {

// A sysfs tree in a temporary directory, shaped like the kernel's, for code that
// reads sysfs through a root path. Removed when it goes out of scope.
class FakeSysfs {
public:
    struct Device {
        std::string address{};
        uint16_t vendor = 0x1002;
        uint16_t device = 0x687f;
        uint32_t classCode = 0x030000;
        std::string driver{};
        std::string driverOverride{};
        int iommuGroup = -1;
        bool bootVga = false;
        // (index, size, resize mask)
        std::vector<std::tuple<unsigned, uint64_t, uint64_t>> bars{};
        std::vector<std::string> drmNodes{};
    };

    FakeSysfs();
    ~FakeSysfs();
    FakeSysfs(const FakeSysfs&) = delete;
    FakeSysfs& operator=(const FakeSysfs&) = delete;

    const std::filesystem::path& root() const { return root_; }
    void add(const Device& device);
    void remove(const std::string& address);
    void bind(const std::string& address, const std::string& driver);
    void unbind(const std::string& address);
    void addDriver(const std::string& driver);

private:
    std::filesystem::path deviceDir(const std::string& address) const;
    std::filesystem::path root_;
};

} // namespace gpuswap::testing
