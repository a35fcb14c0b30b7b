// SPDX-License-Identifier: GPL-2.0-or-later
#include "device_registry.hpp"
#include "fake_sysfs.hpp"

#include <gtest/gtest.h>

using namespace gpuswap;
using gpuswap::testing::FakeSysfs;

namespace {

PciAddress address(const char* text) { return *PciAddress::parse(text); }

class RecordingListener final : public DeviceRegistry::Listener {
public:
    std::vector<std::string> events;

    void deviceAdded(const PciDevice& device) override { events.push_back("added " + device.address.str()); }
    void deviceChanged(const PciDevice& device, const std::vector<std::string>& properties) override
    {
        std::string line = "changed " + device.address.str();
        for (const auto& name : properties)
            line += " " + name;
        events.push_back(line);
    }
    void deviceRemoved(const PciAddress& gone) override { events.push_back("removed " + gone.str()); }
};

class DeviceRegistryTest : public ::testing::Test {
protected:
    void SetUp() override
    {
        fake.add({.address = "0000:03:00.0", .classCode = 0x030000, .driver = "amdgpu", .iommuGroup = 14});
        fake.add({.address = "0000:03:00.1", .classCode = 0x040300, .driver = "snd_hda_intel", .iommuGroup = 14});
        fake.add({.address = "0000:06:00.0", .classCode = 0x010802, .driver = "nvme", .iommuGroup = 20});
    }

    FakeSysfs fake;
    Sysfs sysfs{fake.root()};
    RecordingListener listener;
    DeviceRegistry registry{sysfs, listener};
};

} // namespace

TEST_F(DeviceRegistryTest, FirstScanAddsTheTrackedDevices)
{
    registry.rescan();
    EXPECT_EQ(listener.events, (std::vector<std::string>{"added 0000:03:00.0", "added 0000:03:00.1"}));
    EXPECT_EQ(registry.devices().size(), 2U);
}

TEST_F(DeviceRegistryTest, RefreshReportsExactlyWhatChanged)
{
    registry.rescan();
    listener.events.clear();
    fake.unbind("0000:03:00.0");
    registry.refresh(address("0000:03:00.0"));
    registry.refresh(address("0000:03:00.1"));
    EXPECT_EQ(listener.events, (std::vector<std::string>{"changed 0000:03:00.0 Driver"}));
    EXPECT_EQ(registry.devices().at(address("0000:03:00.0")).driver, "");
    fake.bind("0000:03:00.0", "vfio-pci");
    registry.refresh(address("0000:03:00.0"));
    EXPECT_EQ(listener.events.back(), "changed 0000:03:00.0 Driver");
    EXPECT_EQ(registry.devices().at(address("0000:03:00.0")).driver, "vfio-pci");
}

TEST_F(DeviceRegistryTest, UntrackedDevicesAreIgnoredUntilAProfileNamesThem)
{
    registry.rescan();
    listener.events.clear();
    registry.refresh(address("0000:06:00.0"));
    EXPECT_TRUE(listener.events.empty());
    registry.setProfileDevices({address("0000:06:00.0")});
    EXPECT_EQ(listener.events, (std::vector<std::string>{"added 0000:06:00.0"}));
    registry.setProfileDevices({});
    EXPECT_EQ(listener.events.back(), "removed 0000:06:00.0");
}

TEST_F(DeviceRegistryTest, RemovedDeviceDisappears)
{
    registry.rescan();
    listener.events.clear();
    fake.remove("0000:03:00.1");
    registry.refresh(address("0000:03:00.1"));
    EXPECT_EQ(listener.events, (std::vector<std::string>{"removed 0000:03:00.1"}));
}

TEST(ChangedDeviceProperties, NamesEachDifference)
{
    const PciDevice before{.address = address("0000:03:00.0"), .driver = "amdgpu", .drmNodes = {"/dev/dri/card1"}};
    PciDevice after = before;
    EXPECT_TRUE(changedDeviceProperties(before, after).empty());
    after.driver = "";
    after.drmNodes = {};
    after.driverOverride = "vfio-pci";
    after.bars = {{0, 1 << 20, 0}};
    EXPECT_EQ(changedDeviceProperties(before, after),
              (std::vector<std::string>{"Driver", "DriverOverride", "Bars", "DrmNodes"}));
}
