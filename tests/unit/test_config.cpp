// SPDX-License-Identifier: GPL-2.0-or-later
#include "config.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

using namespace gpuswap;
using ::testing::HasSubstr;

namespace {

std::string errorOf(const std::string& text)
{
    try {
        parseConfig(text, "/etc/gpuswap/gpuswapd.json");
    } catch (const ConfigError& e) {
        return e.what();
    }
    return "(accepted)";
}

const char* const kExample = R"({
  "display_manager": "display-manager.service", // unit stopped before, started after a swap
  "timeouts_ms": { "unit": 30000, "bind": 10000, "holders": 10000 },
  "vms": {
    "win11": {
      "devices": ["0000:03:00.0", "0000:03:00.1"],
      "bars": { "0000:03:00.0": { "0": "8G", "2": "8M" } },
      "display_manager": "restart",
      "holders": "wait"
    }
  }
})";

} // namespace

TEST(Config, ParsesTheDocumentedExample)
{
    const Config config = parseConfig(kExample, "x.json");
    EXPECT_EQ(config.displayManagerUnit, "display-manager.service");
    EXPECT_EQ(config.timeouts.bind.count(), 10000);
    ASSERT_EQ(config.vms.size(), 1U);
    const VmProfile& vm = config.vms.at("win11");
    ASSERT_EQ(vm.devices.size(), 2U);
    EXPECT_EQ(vm.devices[1].str(), "0000:03:00.1");
    const auto gpu = *PciAddress::parse("0000:03:00.0");
    EXPECT_EQ(vm.bars.at(gpu).at(0), uint64_t{8} << 30);
    EXPECT_EQ(vm.bars.at(gpu).at(2), uint64_t{8} << 20);
    EXPECT_EQ(vm.displayManager, DisplayManagerPolicy::Restart);
    EXPECT_EQ(vm.holders, HolderPolicy::Wait);
}

TEST(Config, DefaultsWhenKeysAreLeftOut)
{
    const Config config = parseConfig(R"({"vms": {"w": {}}})", "x.json");
    EXPECT_EQ(config.displayManagerUnit, "display-manager.service");
    EXPECT_EQ(config.timeouts, Timeouts{});
    EXPECT_TRUE(config.vms.at("w").devices.empty());
    EXPECT_EQ(config.vms.at("w").displayManager, DisplayManagerPolicy::Restart);
    EXPECT_EQ(config.vms.at("w").holders, HolderPolicy::Wait);
}

TEST(Config, EmptyObjectMeansNoProfiles) { EXPECT_TRUE(parseConfig("{}", "x.json").vms.empty()); }

TEST(Config, MissingFileMeansNoProfiles)
{
    EXPECT_EQ(loadConfig("/nonexistent/gpuswap/gpuswapd.json"), Config{});
}

TEST(Config, ReadsAFile)
{
    const auto path = std::filesystem::temp_directory_path() / ("gpuswap-config-" + std::to_string(getpid()));
    std::ofstream(path) << kExample;
    const Config config = loadConfig(path);
    std::filesystem::remove(path);
    EXPECT_TRUE(config.vms.contains("win11"));
}

TEST(Config, SyntaxErrorsNameFileLineAndColumn)
{
    EXPECT_THAT(errorOf("{\n  \"vms\": {,}\n}"), HasSubstr("/etc/gpuswap/gpuswapd.json:2:11: syntax error"));
    EXPECT_THAT(errorOf("{\"vms\": {}"), HasSubstr("/etc/gpuswap/gpuswapd.json:1:11: syntax error"));
    EXPECT_THAT(errorOf(""), HasSubstr("gpuswapd.json:1:1: syntax error"));
    EXPECT_THAT(errorOf("{} {}"), HasSubstr("gpuswapd.json:1:4: syntax error"));
}

TEST(Config, UnknownKeysAreErrors)
{
    EXPECT_THAT(errorOf(R"({"display_manger": "gdm.service"})"), HasSubstr("gpuswapd.json: display_manger: unknown key"));
    EXPECT_THAT(errorOf(R"({"timeouts_ms": {"unti": 5}})"), HasSubstr(": timeouts_ms/unti: unknown key"));
    EXPECT_THAT(errorOf(R"({"vms": {"w": {"device": []}}})"), HasSubstr(": vms/w/device: unknown key"));
}

TEST(Config, DuplicateKeysAreErrors)
{
    EXPECT_THAT(errorOf(R"({"vms": {}, "vms": {}})"), HasSubstr(": vms: duplicate key"));
    EXPECT_THAT(errorOf(R"({"vms": {"w": {}, "w": {}}})"), HasSubstr(": vms/w: duplicate key"));
    EXPECT_THAT(errorOf(R"({"vms": {"w": {"bars": {"0000:03:00.0": {"0": "8G", "0": "4G"}}}}})"),
                HasSubstr(": vms/w/bars/0000:03:00.0/0: duplicate key"));
    EXPECT_THAT(errorOf(R"({"x": [{"a": 1, "a": 2}]})"), HasSubstr(": x/0/a: duplicate key"));
}

TEST(Config, WrongTypesAreErrors)
{
    EXPECT_THAT(errorOf("[]"), HasSubstr("(top level): expected an object, found array"));
    EXPECT_THAT(errorOf(R"({"display_manager": 5})"), HasSubstr(": display_manager: expected a string, found number"));
    EXPECT_THAT(errorOf(R"({"timeouts_ms": {"unit": "5s"}})"), HasSubstr(": timeouts_ms/unit: expected a whole number"));
    EXPECT_THAT(errorOf(R"({"timeouts_ms": {"unit": 1.5}})"), HasSubstr(": timeouts_ms/unit: expected a whole number"));
    EXPECT_THAT(errorOf(R"({"timeouts_ms": {"unit": 0}})"), HasSubstr(": timeouts_ms/unit: 0 is outside"));
    EXPECT_THAT(errorOf(R"({"vms": []})"), HasSubstr(": vms: expected an object"));
    EXPECT_THAT(errorOf(R"({"vms": {"w": {"devices": "0000:03:00.0"}}})"), HasSubstr(": vms/w/devices: expected an array"));
    EXPECT_THAT(errorOf(R"({"vms": {"w": {"devices": [3]}}})"), HasSubstr(": vms/w/devices/0: expected a string"));
    EXPECT_THAT(errorOf(R"({"vms": {"w": {"holders": true}}})"), HasSubstr(": vms/w/holders: expected a string"));
    EXPECT_THAT(errorOf(R"({"vms": {"w": {"bars": {"0000:03:00.0": {"0": 8}}}}})"),
                HasSubstr(": vms/w/bars/0000:03:00.0/0: expected a string"));
}

TEST(Config, ChoicesAreChecked)
{
    EXPECT_THAT(errorOf(R"({"vms": {"w": {"display_manager": "off"}}})"),
                HasSubstr(": vms/w/display_manager: \"off\" is not one of \"restart\", \"keep\", \"stop\""));
    EXPECT_EQ(parseConfig(R"({"vms": {"w": {"display_manager": "stop"}}})", "x").vms.at("w").displayManager,
              DisplayManagerPolicy::Stop);
    EXPECT_THAT(errorOf(R"({"vms": {"w": {"holders": "kill"}}})"), HasSubstr(": vms/w/holders: \"kill\" is not one of"));
    EXPECT_EQ(parseConfig(R"({"vms": {"w": {"display_manager": "keep", "holders": "ignore"}}})", "x").vms.at("w").holders,
              HolderPolicy::Ignore);
}

TEST(Config, AddressesAreCheckedAndNormalised)
{
    EXPECT_THAT(errorOf(R"({"vms": {"w": {"devices": ["3:00.0"]}}})"),
                HasSubstr(": vms/w/devices/0: \"3:00.0\" is not a PCI address"));
    // lspci's and virsh's forms name the same device.
    EXPECT_THAT(errorOf(R"({"vms": {"w": {"devices": ["03:00.0", "pci_0000_03_00_0"]}}})"),
                HasSubstr(": vms/w/devices/1: 0000:03:00.0 is listed twice"));
    EXPECT_THAT(errorOf(R"({"vms": {"w": {"devices": ["0000:03:00.0", "0000:03:00.0"]}}})"),
                HasSubstr(": vms/w/devices/1: 0000:03:00.0 is listed twice"));
    EXPECT_THAT(errorOf(R"({"vms": {"w": {"devices": ["0000:0a:00.0", "0000:0A:00.0"]}}})"),
                HasSubstr(": vms/w/devices/1: 0000:0a:00.0 is listed twice"));
    EXPECT_THAT(errorOf(R"({"vms": {"w": {"bars": {"0000:03:00.0": {}, "0000:03:00.0 ": {}}}}})"),
                HasSubstr(": vms/w/bars/0000:03:00.0 : \"0000:03:00.0 \" is not a PCI address"));
    EXPECT_THAT(errorOf(R"({"vms": {"w": {"bars": {"0000:03:00.0": {}, "0000:03:00.0": {}}}}})"),
                HasSubstr("duplicate key"));
    EXPECT_THAT(errorOf(R"({"vms": {"w": {"bars": {"0000:0A:00.0": {}, "0000:0a:00.0": {}}}}})"),
                HasSubstr(": vms/w/bars/0000:0a:00.0: 0000:0a:00.0 is given twice"));
    EXPECT_THAT(errorOf(R"({"vms": {"w": {"devices": ["0000:03:00.0"], "bars": {"0000:04:00.0": {"0": "8G"}}}}})"),
                HasSubstr(": vms/w/bars/0000:04:00.0: 0000:04:00.0 is not in this VM's devices"));
    EXPECT_EQ(parseConfig(R"({"vms": {"w": {"devices": ["0000:0A:00.0"]}}})", "x").vms.at("w").devices[0].str(),
              "0000:0a:00.0");
}

TEST(Config, BarIndexesAreZeroToFive)
{
    for (const char* index : {"6", "-1", "00", "a", ""})
        EXPECT_THAT(errorOf(std::string(R"({"vms": {"w": {"bars": {"0000:03:00.0": {")") + index + R"(": "8G"}}}}})"),
                    HasSubstr("is not a BAR index 0-5"))
            << index;
    for (const char* index : {"0", "5"})
        EXPECT_NO_THROW(parseConfig(std::string(R"({"vms": {"w": {"bars": {"0000:03:00.0": {")") + index +
                                        R"(": "8G"}}}}})",
                                    "x"));
}

TEST(Config, BarSizesGoodAndBad)
{
    const auto withSize = [](const std::string& size) {
        return std::string(R"({"vms": {"w": {"bars": {"0000:03:00.0": {"0": ")") + size + R"("}}}}})";
    };
    for (const char* good : {"8G", "256M", "1M", "1024K", "1T"})
        EXPECT_NO_THROW(parseConfig(withSize(good), "x")) << good;
    for (const char* bad : {"3K", "12M", "-1", "8X", "", "512K", "8"})
        EXPECT_THAT(errorOf(withSize(bad)), HasSubstr(": vms/w/bars/0000:03:00.0/0: \"" + std::string(bad) + "\" is not a BAR size"))
            << bad;
}

TEST(Config, UnitNamesAreChecked)
{
    for (const char* bad : {"", "gdm", "gdm.servic", "a/b.service", "../x.service", ".service", "gdm service.service",
                            "@.service"})
        EXPECT_THAT(errorOf(std::string(R"({"display_manager": ")") + bad + "\"}"),
                    HasSubstr(": display_manager: \"" + std::string(bad) + "\" is not a systemd unit name"))
            << bad;
    for (const char* good : {"gdm.service", "display-manager.service", "getty@tty1.service", "sddm.service"})
        EXPECT_NO_THROW(parseConfig(std::string(R"({"display_manager": ")") + good + "\"}", "x")) << good;
}

TEST(Config, VmNamesAreChecked)
{
    EXPECT_THAT(errorOf(R"({"vms": {"": {}}})"), HasSubstr(": vms/: a VM name must be 1 to 255 bytes"));
    EXPECT_THAT(errorOf(R"({"vms": {"a/b": {}}})"), HasSubstr("a VM name must be"));
    EXPECT_THAT(errorOf(R"({"vms": {"a\u0001": {}}})"), HasSubstr("a VM name must be"));
    EXPECT_THAT(errorOf(R"({"vms": {")" + std::string(256, 'x') + R"(": {}}})"), HasSubstr("a VM name must be"));
    EXPECT_NO_THROW(parseConfig(R"({"vms": {")" + std::string(255, 'x') + R"(": {}}})", "x"));
    EXPECT_NO_THROW(parseConfig(R"json({"vms": {"Windows 11 (gaming)": {}}})json", "x"));
}

TEST(Config, StopUnitsAreUnitNamesOnce)
{
    const auto config = parseConfig(R"({"vms": {"w": {"stop_units": ["nvidia-persistenced.service", "x@1.service"]}}})", "x");
    EXPECT_EQ(config.vms.at("w").stopUnits, (std::vector<std::string>{"nvidia-persistenced.service", "x@1.service"}));
    EXPECT_THAT(errorOf(R"({"vms": {"w": {"stop_units": "nvidia-persistenced.service"}}})"),
                HasSubstr(": vms/w/stop_units: expected an array of systemd unit names, found string"));
    EXPECT_THAT(errorOf(R"({"vms": {"w": {"stop_units": ["nvidia-persistenced"]}}})"),
                HasSubstr(": vms/w/stop_units/0: \"nvidia-persistenced\" is not a systemd unit name"));
    EXPECT_THAT(errorOf(R"({"vms": {"w": {"stop_units": ["a.service", "a.service"]}}})"),
                HasSubstr(": vms/w/stop_units/1: a.service is listed twice"));
}
