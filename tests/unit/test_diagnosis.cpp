#include "diagnosis.hpp"
#include "fake_sysfs.hpp"
#include "iommu_group.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

using namespace gpuswap;
using gpuswap::testing::FakeSysfs;
using ::testing::HasSubstr;

namespace {

PciAddress address(const char* text) { return *PciAddress::parse(text); }

std::vector<std::string> codes(const std::vector<Finding>& findings)
{
    std::vector<std::string> result;
    for (const Finding& finding : findings)
        result.push_back(severityName(finding.severity) + ":" + finding.code);
    return result;
}

PciDevice device(const char* text, uint32_t classCode, int group, const char* driver)
{
    return PciDevice{.address = address(text), .classCode = classCode, .driver = driver, .iommuGroup = group};
}

} // namespace

TEST(IommuGroup, HostDriversOutsideTheListBlockTheGroup)
{
    const std::vector<PciDevice> present{
        device("0000:00:01.0", 0x060400, 2, "pcieport"),  // bridge: harmless
        device("0000:03:00.0", 0x030000, 2, "amdgpu"),
        device("0000:03:00.1", 0x040300, 2, "snd_hda_intel"),
        device("0000:04:00.0", 0x0c0330, 2, "xhci_hcd"),  // USB on its host driver
        device("0000:04:00.1", 0x0c8000, 2, ""),          // no driver: harmless
        device("0000:04:00.2", 0x0c8000, 2, "pci-stub"),  // stub: harmless
        device("0000:05:00.0", 0x0c0330, 5, "xhci_hcd"),  // another group
    };
    const auto blockers = viabilityBlockers(present, {address("0000:03:00.0"), address("0000:03:00.1")});
    ASSERT_EQ(blockers.size(), 1U);
    EXPECT_EQ(blockers[0].address.str(), "0000:04:00.0");
    EXPECT_TRUE(viabilityBlockers(present, {address("0000:03:00.0"), address("0000:03:00.1"), address("0000:04:00.0")})
                    .empty());
}

TEST(Diagnosis, HostWithoutIommuOrProfiles)
{
    HostFacts host;
    const auto findings = diagnose(Config{}, host, nullptr);
    EXPECT_EQ(codes(findings),
              (std::vector<std::string>{"error:iommu-off", "warning:no-profiles", "info:vfio-pci-not-loaded"}));
    EXPECT_THAT(findings[0].message, HasSubstr("intel_iommu=on"));
}

TEST(Diagnosis, HealthyHostHasNothingToSay)
{
    Config config;
    config.vms.emplace("win11", VmProfile{.name = "win11"});
    const HostFacts host{.iommuGroupsPresent = true, .vfioPciLoaded = true, .devices = {}};
    EXPECT_TRUE(diagnose(config, host, nullptr).empty());
}

TEST(Diagnosis, ProfileChecksFromSysfs)
{
    FakeSysfs fake;
    fake.add({.address = "0000:03:00.0", .classCode = 0x030000, .driver = "amdgpu", .iommuGroup = 14,
              .bars = {{0, uint64_t{256} << 20, 0x7f00}, {2, uint64_t{2} << 20, 0}}});
    fake.add({.address = "0000:03:00.1", .classCode = 0x040300, .driver = "snd_hda_intel", .iommuGroup = 14});
    fake.add({.address = "0000:04:00.0", .classCode = 0x0c0330, .driver = "xhci_hcd", .iommuGroup = 14});
    fake.addDriver("vfio-pci");
    Config config;
    VmProfile vm{.name = "win11", .devices = {address("0000:03:00.0"), address("0000:03:00.1"), address("0000:09:00.0")}};
    vm.bars[address("0000:03:00.0")] = {{0, uint64_t{32} << 30}, {2, uint64_t{8} << 20}};
    config.vms.emplace("win11", vm);

    const auto findings = diagnose(config, gatherHostFacts(Sysfs(fake.root())), &config.vms.at("win11"));
    EXPECT_EQ(codes(findings), (std::vector<std::string>{"error:device-missing", "error:group-not-viable",
                                                         "error:bar-size-unsupported", "error:bar-not-resizable"}));
    EXPECT_THAT(findings[1].message, HasSubstr("0000:04:00.0 on xhci_hcd"));
    EXPECT_THAT(findings[2].message, HasSubstr("cannot be 32G; it supports 256M 512M 1G 2G 4G 8G 16G"));
}
