// SPDX-License-Identifier: GPL-2.0-or-later
#include "planner.hpp"

#include <gtest/gtest.h>

#include <algorithm>

using namespace gpuswap;

namespace {

PciAddress address(const char* text) { return *PciAddress::parse(text); }

const uint64_t MiB = uint64_t{1} << 20;
const uint64_t GiB = uint64_t{1} << 30;

std::map<PciAddress, PciDevice> rx6800(const std::string& gpuDriver, const std::string& audioDriver, uint64_t bar0)
{
    std::map<PciAddress, PciDevice> devices;
    PciDevice gpu{.address = address("0000:03:00.0"), .classCode = 0x030000, .driver = gpuDriver, .iommuGroup = 14};
    gpu.driverOverride = gpuDriver == "vfio-pci" ? "vfio-pci" : "";
    gpu.bars = {{0, bar0, 0x7f00}, {2, 256 * MiB, 0xff}};
    if (gpuDriver == "amdgpu")
        gpu.drmNodes = {"/dev/dri/card1", "/dev/dri/renderD129"};
    PciDevice audio{.address = address("0000:03:00.1"), .classCode = 0x040300, .driver = audioDriver, .iommuGroup = 14};
    audio.driverOverride = audioDriver == "vfio-pci" ? "vfio-pci" : "";
    devices.emplace(gpu.address, gpu);
    devices.emplace(audio.address, audio);
    return devices;
}

std::vector<std::string> descriptions(const std::vector<Step>& steps)
{
    std::vector<std::string> lines;
    for (const Step& step : steps)
        lines.push_back(step.description);
    return lines;
}

Transition prepareTransition()
{
    Transition transition;
    transition.targets = {{address("0000:03:00.0"), {"vfio-pci", "vfio-pci", {{0, 8 * GiB}, {2, 8 * MiB}}}},
                          {address("0000:03:00.1"), {"vfio-pci", "vfio-pci", {}}}};
    transition.stopUnits = {"display-manager.service"};
    transition.restartUnits = {"display-manager.service"};
    transition.checkViable = true;
    return transition;
}

// The writes that run kernel code or change what it binds.
size_t driverCodeWrites(const std::vector<Step>& steps)
{
    return static_cast<size_t>(std::count_if(steps.begin(), steps.end(), [](const Step& step) {
        return step.kind == StepKind::SetOverride || step.kind == StepKind::Unbind || step.kind == StepKind::Resize ||
               step.kind == StepKind::Probe;
    }));
}

} // namespace

TEST(Planner, PrepareIsTheMinimalSequence)
{
    const auto steps = planTransition(rx6800("amdgpu", "snd_hda_intel", 16 * GiB), false, prepareTransition());
    EXPECT_EQ(descriptions(steps), (std::vector<std::string>{
                                       "load vfio-pci (start modprobe@vfio_pci.service)",
                                       "stop display-manager.service",
                                       "wait until no process holds /dev/dri/card1, /dev/dri/renderD129",
                                       "set driver_override of 0000:03:00.1 to vfio-pci",
                                       "unbind 0000:03:00.1 from snd_hda_intel",
                                       "set driver_override of 0000:03:00.0 to vfio-pci",
                                       "unbind 0000:03:00.0 from amdgpu",
                                       "resize BAR 0 of 0000:03:00.0 from 16G to 8G",
                                       "resize BAR 2 of 0000:03:00.0 from 256M to 8M",
                                       "bind 0000:03:00.0 to vfio-pci",
                                       "bind 0000:03:00.1 to vfio-pci",
                                       "check that IOMMU group 14 is viable",
                                       "start display-manager.service",
                                   }));
    // 2 overrides + 2 unbinds + 2 resizes + 2 probes: vfio-pci is never bound only to be unbound.
    EXPECT_EQ(driverCodeWrites(steps), 8U);
    EXPECT_EQ(steps[7].kind, StepKind::Resize);
    EXPECT_EQ(steps[7].size, 8 * GiB);
    EXPECT_FALSE(steps[9].waitForDrmNode);
}

TEST(Planner, ReleasePinsTheRecordedDriverGpuFirstAndWaitsForTheCardNodeItHad)
{
    Transition transition;
    DeviceSetting gpu{"amdgpu", "", {{0, 16 * GiB}}};
    gpu.cardNode = true;
    transition.targets = {{address("0000:03:00.0"), gpu}, {address("0000:03:00.1"), {"snd_hda_intel", "", {}}}};
    transition.barsBestEffort = true;
    auto machine = rx6800("vfio-pci", "vfio-pci", 8 * GiB);
    machine.at(address("0000:03:00.0")).bars = {{0, 8 * GiB, 0x7f00}};
    const auto steps = planTransition(machine, true, transition);
    EXPECT_EQ(descriptions(steps), (std::vector<std::string>{
                                       "set driver_override of 0000:03:00.0 to amdgpu",
                                       "wait until no process holds /dev/vfio/14",
                                       "unbind 0000:03:00.0 from vfio-pci",
                                       "resize BAR 0 of 0000:03:00.0 from 8G to 16G",
                                       "bind 0000:03:00.0 to amdgpu",
                                       "clear driver_override of 0000:03:00.0",
                                       "set driver_override of 0000:03:00.1 to snd_hda_intel",
                                       "unbind 0000:03:00.1 from vfio-pci",
                                       "bind 0000:03:00.1 to snd_hda_intel",
                                       "clear driver_override of 0000:03:00.1",
                                   }));
    EXPECT_TRUE(steps[3].bestEffort);
    EXPECT_TRUE(steps[4].waitForDrmNode);
    EXPECT_FALSE(steps[8].waitForDrmNode);
}

TEST(Planner, ReleaseOfACardWithoutACardNodeDoesNotWaitForOne)
{
    Transition transition;
    transition.targets = {{address("0000:03:00.0"), {"nvidia", "", {}}}};
    const auto steps = planTransition(rx6800("vfio-pci", "vfio-pci", 16 * GiB), true, transition);
    ASSERT_FALSE(steps.empty());
    const auto probe = std::find_if(steps.begin(), steps.end(), [](const Step& step) { return step.kind == StepKind::Probe; });
    ASSERT_NE(probe, steps.end());
    EXPECT_EQ(probe->driver, "nvidia");
    EXPECT_FALSE(probe->waitForDrmNode);
    EXPECT_EQ(steps.front().description, "set driver_override of 0000:03:00.0 to nvidia");
}

TEST(Planner, ResizeOnVfioUnbindsOnceAndProbesOnce)
{
    Transition transition;
    transition.targets = {{address("0000:03:00.0"), {"vfio-pci", "vfio-pci", {{0, 4 * GiB}, {2, 8 * MiB}}}}};
    EXPECT_EQ(descriptions(planTransition(rx6800("vfio-pci", "vfio-pci", 16 * GiB), true, transition)),
              (std::vector<std::string>{"wait until no process holds /dev/vfio/14", "unbind 0000:03:00.0 from vfio-pci",
                                        "resize BAR 0 of 0000:03:00.0 from 16G to 4G",
                                        "resize BAR 2 of 0000:03:00.0 from 256M to 8M", "bind 0000:03:00.0 to vfio-pci"}));
}

TEST(Planner, NothingToDoIsNoStep)
{
    Transition transition;
    transition.targets = {{address("0000:03:00.0"), {"vfio-pci", "vfio-pci", {{0, 8 * GiB}}}}};
    EXPECT_TRUE(planTransition(rx6800("vfio-pci", "vfio-pci", 8 * GiB), true, transition).empty());
}

TEST(Planner, SamePlanForTheSameMachine)
{
    const auto machine = rx6800("amdgpu", "snd_hda_intel", 16 * GiB);
    EXPECT_EQ(descriptions(planTransition(machine, true, prepareTransition())),
              descriptions(planTransition(machine, true, prepareTransition())));
}

TEST(Planner, RollbackFromAWrongBindingSetsTheOverrideBeforeTheBarCycle)
{
    auto machine = rx6800("vfio-pci", "vfio-pci", 16 * GiB);
    machine.at(address("0000:03:00.0")).driverOverride = "";
    Transition transition;
    transition.targets = {{address("0000:03:00.0"), {"vfio-pci", "vfio-pci", {{0, 8 * GiB}}}}};
    const auto lines = descriptions(planTransition(machine, true, transition));
    ASSERT_GE(lines.size(), 2U);
    EXPECT_EQ(lines[0], "set driver_override of 0000:03:00.0 to vfio-pci");
    EXPECT_EQ(lines.back(), "bind 0000:03:00.0 to vfio-pci");
}

TEST(Planner, DefaultDriverAcceptsWhateverBinds)
{
    auto machine = rx6800("amdgpu", "vfio-pci", 16 * GiB);
    Transition transition;
    transition.targets = {{address("0000:03:00.1"), {kDefaultDriver, "", {}}}};
    const auto steps = planTransition(machine, true, transition);
    EXPECT_EQ(descriptions(steps), (std::vector<std::string>{"clear driver_override of 0000:03:00.1",
                                                             "wait until no process holds /dev/vfio/14",
                                                             "unbind 0000:03:00.1 from vfio-pci",
                                                             "bind 0000:03:00.1 to its default driver"}));
    EXPECT_EQ(steps.back().driver, kDefaultDriver);
}
