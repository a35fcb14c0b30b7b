// SPDX-License-Identifier: GPL-2.0-or-later
#pragma once

#include "device_locks.hpp"
#include "pci_address.hpp"

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace gpuswap {

struct PciBar {
    unsigned index = 0;
    uint64_t size = 0;
    // resourceN_resize as the kernel reports it (bit n: 2^n MiB); 0 when not resizable.
    uint64_t supportedMask = 0;
    bool operator==(const PciBar&) const = default;
};

// What the kernel's sysfs says about one PCI function at one moment.
struct PciDevice {
    PciAddress address;
    uint16_t vendorId = 0;
    uint16_t deviceId = 0;
    uint32_t classCode = 0;
    std::string driver{};          // "" when unbound
    std::string driverOverride{};  // "" when unset (the kernel shows "(null)")
    int iommuGroup = -1;
    bool bootVga = false;
    std::vector<PciBar> bars{};           // memory BARs 0-5 that have a size
    // Memory BARs the firmware placed below 4 GiB: with "Above 4G Decoding" off there is
    // no 64-bit window for them to grow into.
    std::vector<unsigned> barsBelow4G{};
    std::vector<std::string> drmNodes{};  // "/dev/dri/card1", "/dev/dri/renderD128"
    // Connectors a compositor lights up ("card1-DP-1"): the GPU drives a screen.
    std::vector<std::string> enabledConnectors{};
    // On NVIDIA's proprietary driver: "/dev/nvidia0", from the driver's "Device Minor".
    std::string nvidiaNode{};

    bool isDisplayController() const { return (classCode >> 16) == 0x03; }
    // The configuration header's type (byte 0x0e, without the multi-function bit): 1 is a
    // PCI-to-PCI bridge, 2 a CardBus bridge; nullopt when `config` cannot be read.
    std::optional<uint8_t> headerType{};
    // What VFIO counts as a bridge (drivers/vfio/vfio.c before 5.19: hdr_type is not
    // normal): by header type; by class code (PCI/CardBus bridge) only without a header.
    bool isPciBridge() const
    {
        if (headerType)
            return *headerType == 1 || *headerType == 2;
        return (classCode >> 8) == 0x0604 || (classCode >> 8) == 0x0607 || (classCode >> 8) == 0x0609;
    }
    bool operator==(const PciDevice&) const = default;
};

// Why BAR `index` of the device cannot grow to `size` bytes where the firmware placed it:
// below 4 GiB there is no 64-bit window to grow into. nullopt: the kernel may try.
std::optional<std::string> cannotGrow(const PciDevice& device, unsigned index, uint64_t size);

// The first line of a sysfs (or procfs) attribute without its trailing blanks; nullopt
// when it cannot be read.
std::optional<std::string> readAttribute(const std::filesystem::path& path);

// The kernel's sysfs below a root: "/sys" on a host (and under the umockdev
// preload, which redirects it), a plain directory tree in unit tests.
class Sysfs {
public:
    explicit Sysfs(std::filesystem::path root = "/sys", std::filesystem::path proc = "/proc")
        : root_(std::move(root)), proc_(std::move(proc))
    {
    }

    // From then on, a device whose lock a write of ours holds is read without the
    // attributes that take that lock: driver_override and the resizable-BAR masks keep
    // the values last read.
    void respectLocks(const DeviceLocks& locks) { locks_ = &locks; }

    const std::filesystem::path& root() const { return root_; }
    std::filesystem::path devicePath(const PciAddress& address) const;
    std::filesystem::path driverPath(const std::string& driver) const;

    std::vector<PciAddress> listPciDevices() const;
    // nullopt when the device is gone (removed between listing and reading).
    std::optional<PciDevice> readDevice(const PciAddress& address) const;
    // Every present device, in address order.
    std::vector<PciDevice> readAllDevices() const;
    // The members of an IOMMU group, from /sys/kernel/iommu_groups/N/devices.
    std::vector<PciAddress> iommuGroupMembers(int group) const;
    bool hasDriver(const std::string& driver) const;
    // Whether the kernel exposes IOMMU groups at all (IOMMU on).
    bool hasIommuGroups() const;

private:
    std::filesystem::path root_;
    std::filesystem::path proc_;
    const DeviceLocks* locks_ = nullptr;
    mutable std::map<PciAddress, PciDevice> lastRead_;
};

// Which devices gpuswapd exports: every display controller, every function in the
// same slot or IOMMU group as one, and every present device a profile names.
std::set<PciAddress> selectTrackedDevices(const std::vector<PciDevice>& present,
                                          const std::set<PciAddress>& profileDevices);

} // namespace gpuswap
