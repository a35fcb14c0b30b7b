// SPDX-License-Identifier: GPL-2.0-or-later
#include "diagnosis.hpp"
#include "fake_sysfs.hpp"
#include "iommu_group.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <set>

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
    host.kernelRelease = "6.1.0-28-amd64";
    host.vfioPciAvailable = false;
    const auto findings = diagnose(Config{}, host, nullptr);
    EXPECT_EQ(codes(findings), (std::vector<std::string>{"error:iommu-off", "error:vfio-pci-missing",
                                                         "warning:hook-missing", "warning:no-profiles"}));
    host.vfioPciAvailable = true;
    EXPECT_EQ(codes(diagnose(Config{}, host, nullptr)).back(), "info:vfio-pci-not-loaded");
    EXPECT_THAT(findings[0].message, HasSubstr("intel_iommu=on"));
}

TEST(Diagnosis, HealthyHostHasNothingToSay)
{
    Config config;
    config.vms.emplace("win11", VmProfile{.name = "win11"});
    HostFacts host{.iommuGroupsPresent = true, .vfioPciLoaded = true, .vfioPciAvailable = true};
    host.hookInstalled = host.hookExecutable = true;
    EXPECT_TRUE(diagnose(config, host, nullptr).empty());
}

TEST(Diagnosis, ProfileChecksFromSysfs)
{
    FakeSysfs fake;
    fake.add({.address = "0000:03:00.0", .classCode = 0x030000, .driver = "amdgpu", .iommuGroup = 14,
              .bars = {{0, uint64_t{256} << 20, 0x7f00}, {2, uint64_t{2} << 20, 0}}});
    fake.add({.address = "0000:03:00.1", .classCode = 0x040300, .driver = "snd_hda_intel", .iommuGroup = 14});
    fake.add({.address = "0000:04:00.0", .classCode = 0x0c0330, .driver = "xhci_hcd", .iommuGroup = 14});
    fake.add({.address = "0000:00:02.0", .vendor = 0x8086, .device = 0xa780, .classCode = 0x030000, .driver = "i915",
              .iommuGroup = 0});  // keeps the desktop
    fake.addDriver("vfio-pci");  // loaded
    Config config;
    VmProfile vm{.name = "win11", .devices = {address("0000:03:00.0"), address("0000:03:00.1"), address("0000:09:00.0")}};
    vm.bars[address("0000:03:00.0")] = {{0, uint64_t{32} << 30}, {2, uint64_t{8} << 20}};
    config.vms.emplace("win11", vm);

    // Nothing of this host may leak in: every path points into the fake tree.
    const HostPaths paths{.kernelCommandLine = fake.root() / "cmdline", .libvirtHooks = fake.root() / "hooks",
                          .hookLink = fake.root() / "hooks/qemu.d/gpuswap", .modprobeDirs = {}};
    const auto findings = diagnose(config, gatherHostFacts(Sysfs(fake.root()), paths), &config.vms.at("win11"));
    EXPECT_EQ(codes(findings), (std::vector<std::string>{"error:device-missing", "error:group-not-viable",
                                                         "error:bar-size-unsupported", "error:bar-not-resizable",
                                                         "warning:hook-missing", "warning:needs-vendor-reset"}));
    EXPECT_THAT(findings[1].message, HasSubstr("0000:04:00.0 on xhci_hcd"));
    EXPECT_THAT(findings[2].message, HasSubstr("cannot be 32G; it supports 256M 512M 1G 2G 4G 8G 16G"));
}

TEST(Diagnosis, OldHooksVfioIdsAndResets)
{
    Config config;
    config.vms.emplace("win10", VmProfile{.name = "win10", .devices = {address("0000:0b:00.0")}});
    HostFacts host{.iommuGroupsPresent = true, .vfioPciLoaded = true, .vfioPciAvailable = true};
    host.hookInstalled = true;  // but not executable
    host.hookLink = "/etc/libvirt/hooks/qemu.d/gpuswap";
    host.oldDispatcher = true;
    host.libvirtStartedBeforeHook = "libvirtd";
    host.libvirtVersion = std::make_tuple(6, 0, 0);
    host.vmHookScripts["win10"] = {"/etc/libvirt/hooks/qemu.d/win10/prepare/begin/start.sh"};
    host.devices = {device("0000:0b:00.0", 0x030000, 14, "amdgpu"), device("0000:00:02.0", 0x030000, 0, "i915")};
    host.devices[0].vendorId = 0x1002;
    host.devices[0].deviceId = 0x687f;  // Vega 64
    host.vfioIds = {{0x1002, 0x687f}};
    host.vfioIdsSource = "/etc/modprobe.d/vfio.conf";
    host.kernelRelease = "6.1.0-28-amd64";
    auto findings = diagnose(config, host, &config.vms.at("win10"));
    EXPECT_EQ(codes(findings), (std::vector<std::string>{"error:hook-not-executable", "error:libvirt-too-old",
                                                         "warning:libvirt-started-before-hook",
                                                         "warning:old-hook-dispatcher", "warning:vfio-ids-claim",
                                                         "warning:needs-vendor-reset", "warning:old-hook-scripts"}));
    EXPECT_THAT(findings[1].message, HasSubstr("libvirt 6.0.0 does not run hooks from qemu.d/"));
    EXPECT_THAT(findings[2].message, HasSubstr("systemctl restart libvirtd"));
    EXPECT_THAT(findings[4].message, HasSubstr("/etc/modprobe.d/vfio.conf"));
    EXPECT_THAT(findings[6].message, HasSubstr("win10/prepare/begin/start.sh"));

    host.vendorResetLoaded = true;
    host.resetMethods[address("0000:0b:00.0")] = "flr bus";
    findings = diagnose(config, host, nullptr);
    EXPECT_THAT(codes(findings), ::testing::Contains("warning:reset-method-not-device-specific"));
    host.resetMethods[address("0000:0b:00.0")] = "device_specific";
    EXPECT_THAT(codes(diagnose(config, host, nullptr)),
                ::testing::Not(::testing::Contains("warning:reset-method-not-device-specific")));
    EXPECT_FALSE(needsVendorReset(0x1002, 0x73bf));  // Navi 21 resets fine
    EXPECT_TRUE(needsVendorReset(0x1002, 0x731f));   // Navi 10 does not
}

TEST(Diagnosis, LibvirtStartedBeforeTheHookIsFound)
{
    FakeSysfs fake;
    const auto root = fake.root();
    std::filesystem::create_directories(root / "hooks/qemu.d");
    std::filesystem::create_directories(root / "proc/4242");
    std::filesystem::create_directories(root / "run");
    std::ofstream(root / "hooks/qemu.d/gpuswap") << "#!/bin/sh\n";
    // Booted at 1000 s, the daemon started 5 s later (500 ticks at 100 Hz): long before the hook's mtime.
    std::ofstream(root / "proc/stat") << "cpu  1 2 3\nbtime 1000\n";
    std::ofstream(root / "proc/4242/stat") << "4242 (libvirtd) S 1 4242 4242 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 "
                                               "17 0 500 0 0\n";
    std::ofstream(root / "run/libvirtd.pid") << "4242\n";
    HostPaths paths{.kernelCommandLine = root / "cmdline", .libvirtHooks = root / "hooks",
                    .hookLink = root / "hooks/qemu.d/gpuswap", .modprobeDirs = {},
                    .libvirtPidFiles = {root / "run/libvirtd.pid", root / "run/virtqemud.pid"}, .proc = root / "proc",
                    .modules = root / "no-modules"};
    std::ofstream(root / "libvirt.so.0.9000.0") << "";
    std::filesystem::create_symlink("libvirt.so.0.9000.0", root / "libvirt.so.0");
    paths.libraryDirs = {root};
    const HostFacts facts = gatherHostFacts(Sysfs(root), paths);
    EXPECT_EQ(facts.libvirtStartedBeforeHook, "libvirtd");
    EXPECT_EQ(facts.libvirtVersion, std::make_tuple(9, 0, 0));
    EXPECT_FALSE(facts.vfioPciAvailable.has_value()) << "no module index: cannot tell";
    paths.modules = root / "modules";
    std::filesystem::create_directories(paths.modules / facts.kernelRelease);
    std::ofstream(paths.modules / facts.kernelRelease / "modules.dep")
        << "kernel/drivers/vfio/pci/vfio-pci.ko: kernel/drivers/vfio/pci/vfio-pci-core.ko\n";
    EXPECT_EQ(gatherHostFacts(Sysfs(root), paths).vfioPciAvailable, true);
    paths.libvirtPidFiles = {root / "run/virtqemud.pid"};
    EXPECT_EQ(gatherHostFacts(Sysfs(root), paths).libvirtStartedBeforeHook, "");
}

TEST(Diagnosis, DisplayManagerSystemdDoesNotKnow)
{
    Config config;
    config.displayManagerUnit = "nodm.service";
    config.vms.emplace("win11", VmProfile{.name = "win11", .devices = {address("0000:03:00.0")}});
    HostFacts host{.iommuGroupsPresent = true, .vfioPciLoaded = true, .vfioPciAvailable = true};
    host.hookInstalled = host.hookExecutable = true;
    host.devices = {device("0000:03:00.0", 0x030000, 14, "amdgpu"), device("0000:00:02.0", 0x030000, 0, "i915")};
    host.displayManagerKnown = false;
    const auto findings = diagnose(config, host, &config.vms.at("win11"));
    ASSERT_EQ(codes(findings), (std::vector<std::string>{"error:display-manager-missing"}));
    EXPECT_THAT(findings[0].message, HasSubstr("nodm.service"));
    host.displayManagerKnown = true;
    EXPECT_TRUE(diagnose(config, host, &config.vms.at("win11")).empty());
}

TEST(Diagnosis, TheOnlyDisplayNeedsStopAndTheBootDisplayIsNamed)
{
    Config config;
    VmProfile vm{.name = "single", .devices = {address("0000:03:00.0"), address("0000:03:00.1")}};
    config.vms.emplace("single", vm);
    HostFacts host{.iommuGroupsPresent = true, .vfioPciLoaded = true, .vfioPciAvailable = true};
    host.hookInstalled = host.hookExecutable = true;
    host.devices = {device("0000:03:00.0", 0x030000, 13, "amdgpu"), device("0000:03:00.1", 0x040300, 13, "snd_hda_intel")};
    host.devices[0].bootVga = true;
    auto findings = diagnose(config, host, &config.vms.at("single"));
    EXPECT_EQ(codes(findings), (std::vector<std::string>{"error:only-display", "warning:boot-display"}));
    EXPECT_THAT(findings[0].message, HasSubstr("\"display_manager\": \"stop\""));
    EXPECT_THAT(findings[1].message, HasSubstr("0000:03:00.0 is the boot display"));
    config.vms.at("single").displayManager = DisplayManagerPolicy::Stop;
    EXPECT_EQ(codes(diagnose(config, host, &config.vms.at("single"))), (std::vector<std::string>{"warning:boot-display"}));
}

TEST(Diagnosis, KernelsBefore61CannotResize)
{
    Config config;
    VmProfile vm{.name = "win11", .devices = {address("0000:03:00.0")}};
    vm.bars[address("0000:03:00.0")] = {{0, uint64_t{8} << 30}};
    config.vms.emplace("win11", vm);
    HostFacts host{.iommuGroupsPresent = true, .vfioPciLoaded = true, .vfioPciAvailable = true};
    host.hookInstalled = host.hookExecutable = true;
    host.devices = {device("0000:03:00.0", 0x030000, 13, "amdgpu"), device("0000:00:02.0", 0x030000, 0, "i915")};
    host.devices[0].bars = {{0, uint64_t{256} << 20, 0}};  // no resourceN_resize: no mask
    host.kernelRelease = "5.15.0-91-generic";
    auto findings = diagnose(config, host, &config.vms.at("win11"));
    EXPECT_EQ(codes(findings), (std::vector<std::string>{"error:kernel-cannot-resize"}));
    EXPECT_THAT(findings[0].message, HasSubstr("update the kernel"));
    host.kernelRelease = "6.1.0-28-amd64";
    EXPECT_EQ(codes(diagnose(config, host, &config.vms.at("win11"))), (std::vector<std::string>{"error:bar-not-resizable"}));
}

TEST(Diagnosis, AcsOverrideIsNamed)
{
    HostFacts host{.iommuGroupsPresent = true, .vfioPciLoaded = true, .vfioPciAvailable = true};
    host.hookInstalled = host.hookExecutable = true;
    Config config;
    config.vms.emplace("win11", VmProfile{.name = "win11"});
    host.kernelCommandLine = "BOOT_IMAGE=/vmlinuz root=/dev/nvme0n1p2 amd_iommu=on pcie_acs_override=downstream,multifunction";
    const auto findings = diagnose(config, host, nullptr);
    EXPECT_EQ(codes(findings), (std::vector<std::string>{"warning:acs-override"}));
    EXPECT_THAT(findings[0].message, HasSubstr("remove the parameter"));
    host.kernelCommandLine = "BOOT_IMAGE=/vmlinuz amd_iommu=on";
    EXPECT_TRUE(diagnose(config, host, nullptr).empty());
}

TEST(Diagnosis, KeepNamesTheRunningCompositorsCase)
{
    FakeSysfs fake;
    const auto proc = fake.root() / "proc";
    for (const auto& [pid, comm] : std::map<std::string, std::string>{
             {"1", "systemd"}, {"812", "sway"}, {"930", "Xwayland"}, {"1200", "kwin_wayland"}, {"self", "sway"}}) {
        std::filesystem::create_directories(proc / pid);
        std::ofstream(proc / pid / "comm") << comm << "\n";
    }
    EXPECT_EQ(runningCompositors(proc), (std::set<std::string>{"kwin_wayland", "sway"}));
    EXPECT_EQ(compositorCase("firefox"), nullptr);

    Config config;
    VmProfile vm{.name = "win11", .devices = {address("0000:03:00.0")}, .displayManager = DisplayManagerPolicy::Keep};
    config.vms.emplace("win11", vm);
    HostFacts host{.iommuGroupsPresent = true, .vfioPciLoaded = true, .vfioPciAvailable = true};
    host.hookInstalled = host.hookExecutable = true;
    host.devices = {device("0000:03:00.0", 0x030000, 13, "amdgpu"), device("0000:00:02.0", 0x030000, 0, "i915")};
    host.compositors = {"sway"};
    auto findings = diagnose(config, host, &config.vms.at("win11"));
    EXPECT_EQ(codes(findings), (std::vector<std::string>{"info:keep-compositor"}));
    EXPECT_THAT(findings[0].message, HasSubstr("sway runs: sway (wlroots 0.13 and later"));
    config.vms.at("win11").displayManager = DisplayManagerPolicy::Restart;
    EXPECT_TRUE(diagnose(config, host, &config.vms.at("win11")).empty());
}

TEST(Diagnosis, FirmwareFramebufferOnKernelsBefore60)
{
    FakeSysfs fake;
    std::ofstream(fake.root() / "iomem") << "00000000-00000000 : PCI Bus 0000:00\n"
                                            "  00000000-00000000 : 0000:03:00.0\n"
                                            "    00000000-00000000 : BOOTFB\n";
    EXPECT_EQ(firmwareFramebuffers(fake.root() / "iomem"), std::vector<std::string>{"BOOTFB"});
    Config config;
    VmProfile vm{.name = "single", .devices = {address("0000:03:00.0")}, .displayManager = DisplayManagerPolicy::Stop};
    config.vms.emplace("single", vm);
    HostFacts host{.iommuGroupsPresent = true, .vfioPciLoaded = true, .vfioPciAvailable = true};
    host.hookInstalled = host.hookExecutable = true;
    host.devices = {device("0000:03:00.0", 0x030000, 13, "amdgpu")};
    host.devices[0].bootVga = true;
    host.firmwareFramebuffers = {"BOOTFB"};
    host.kernelRelease = "5.15.0-91-generic";
    auto findings = diagnose(config, host, &config.vms.at("single"));
    EXPECT_EQ(codes(findings), (std::vector<std::string>{"error:firmware-framebuffer", "warning:boot-display"}));
    EXPECT_THAT(findings[0].message, HasSubstr("initcall_blacklist=sysfb_init"));
    host.kernelRelease = "6.1.0-28-amd64";
    EXPECT_EQ(codes(diagnose(config, host, &config.vms.at("single"))), (std::vector<std::string>{"warning:boot-display"}));
}

TEST(IommuGroup, TheKernelsRuleDriversThatLeaveDmaToVfioAndBridgesByHeaderType)
{
    std::vector<PciDevice> present{
        device("0000:03:00.0", 0x030000, 7, "amdgpu"),
        device("0000:00:1f.0", 0x060100, 7, "lpc_ich"),       // ISA bridge: class 06, header type 0, a host driver
        device("0000:00:00.0", 0x060000, 7, ""),              // host bridge without a driver
        device("0000:00:1c.0", 0x060400, 7, "shpchp"),        // PCI-to-PCI bridge by header type
        device("0000:05:00.0", 0x020000, 7, "mlx5-vfio-pci"), // a vfio-pci variant driver
        device("0000:00:1c.4", 0x060400, 7, "pcieport"),
    };
    present[1].headerType = 0;
    present[2].headerType = 0;
    present[3].headerType = 1;
    const auto blockers = viabilityBlockers(present, {address("0000:03:00.0")});
    ASSERT_EQ(blockers.size(), 1U);
    EXPECT_EQ(blockers[0].address.str(), "0000:00:1f.0");
}
