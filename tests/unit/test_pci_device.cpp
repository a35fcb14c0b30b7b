// SPDX-License-Identifier: GPL-2.0-or-later
#include "fake_sysfs.hpp"
#include "pci_device.hpp"

#include <gtest/gtest.h>

using namespace gpuswap;
using gpuswap::testing::FakeSysfs;

namespace {

PciAddress address(const char* text) { return *PciAddress::parse(text); }

} // namespace

TEST(PciDevice, ReadsWhatSysfsSays)
{
    FakeSysfs fake;
    fake.add({.address = "0000:03:00.0", .vendor = 0x1002, .device = 0x73bf, .classCode = 0x030000,
              .driver = "amdgpu", .driverOverride = "", .iommuGroup = 14, .bootVga = false,
              .bars = {{0, uint64_t{16} << 30, 0x7f00}, {2, uint64_t{256} << 20, 0xff}, {5, 1 << 20, 0}},
              .drmNodes = {"renderD128", "card1", "controlD65"}});
    const Sysfs sysfs(fake.root());
    const auto device = sysfs.readDevice(address("0000:03:00.0"));
    ASSERT_TRUE(device);
    EXPECT_EQ(device->vendorId, 0x1002);
    EXPECT_EQ(device->deviceId, 0x73bf);
    EXPECT_EQ(device->classCode, 0x030000U);
    EXPECT_TRUE(device->isDisplayController());
    EXPECT_EQ(device->driver, "amdgpu");
    EXPECT_EQ(device->driverOverride, "");
    EXPECT_EQ(device->iommuGroup, 14);
    EXPECT_FALSE(device->bootVga);
    const std::vector<PciBar> bars{{0, uint64_t{16} << 30, 0x7f00}, {2, uint64_t{256} << 20, 0xff}, {5, 1 << 20, 0}};
    EXPECT_EQ(device->bars, bars);
    EXPECT_EQ(device->drmNodes, (std::vector<std::string>{"/dev/dri/card1", "/dev/dri/renderD128"}));
}

TEST(PciDevice, UnboundOverriddenAndGroupless)
{
    FakeSysfs fake;
    fake.add({.address = "0000:00:02.0", .vendor = 0x8086, .device = 0xa780, .classCode = 0x030000,
              .driver = "", .driverOverride = "vfio-pci", .iommuGroup = -1, .bootVga = true});
    const auto device = Sysfs(fake.root()).readDevice(address("0000:00:02.0"));
    ASSERT_TRUE(device);
    EXPECT_EQ(device->driver, "");
    EXPECT_EQ(device->driverOverride, "vfio-pci");
    EXPECT_EQ(device->iommuGroup, -1);
    EXPECT_TRUE(device->bootVga);
    EXPECT_TRUE(device->drmNodes.empty());
}

TEST(PciDevice, AbsentDeviceReadsAsNothing)
{
    FakeSysfs fake;
    EXPECT_FALSE(Sysfs(fake.root()).readDevice(address("0000:03:00.0")));
}

TEST(PciDevice, ListsDevicesAndDrivers)
{
    FakeSysfs fake;
    fake.add({.address = "0000:03:00.1", .driver = "snd_hda_intel"});
    fake.add({.address = "0000:03:00.0", .driver = "amdgpu"});
    const Sysfs sysfs(fake.root());
    const auto list = sysfs.listPciDevices();
    ASSERT_EQ(list.size(), 2U);
    EXPECT_EQ(list[0].str(), "0000:03:00.0");
    EXPECT_TRUE(sysfs.hasDriver("amdgpu"));
    EXPECT_FALSE(sysfs.hasDriver("vfio-pci"));
    EXPECT_FALSE(sysfs.hasIommuGroups());
}

TEST(TrackedDevices, DisplaysTheirSlotAndGroupMatesAndProfileDevices)
{
    const auto device = [](const char* text, uint32_t classCode, int group) {
        return PciDevice{.address = address(text), .classCode = classCode, .iommuGroup = group};
    };
    const std::vector<PciDevice> present{
        device("0000:00:01.0", 0x060400, 2),  // root port in the GPU's group
        device("0000:03:00.0", 0x030000, 2),  // GPU
        device("0000:03:00.1", 0x040300, 3),  // its audio, own group, same slot
        device("0000:05:00.0", 0x0c0330, 9),  // USB controller elsewhere
        device("0000:06:00.0", 0x010802, 10), // NVMe elsewhere
        device("0000:07:00.0", 0x020000, 11), // NIC named in a profile
    };
    const auto tracked = selectTrackedDevices(present, {address("0000:07:00.0"), address("0000:09:00.0")});
    EXPECT_EQ(tracked, (std::set<PciAddress>{address("0000:00:01.0"), address("0000:03:00.0"), address("0000:03:00.1"),
                                             address("0000:07:00.0")}));
}
