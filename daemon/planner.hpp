// SPDX-License-Identifier: GPL-2.0-or-later
#pragma once

#include "config.hpp"
#include "device_setting.hpp"
#include "pci_device.hpp"

#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace gpuswap {

enum class StepKind {
    LoadVfio,         // start modprobe@vfio_pci.service, wait for the driver
    StopUnit,         // stop the display manager, wait for its job and inactive
    StartUnit,        // start it, wait for its job and active
    WaitDrmHolders,   // until no process holds the devices' DRM nodes (or note them)
    WaitVfioFree,     // until no process holds /dev/vfio/<group>
    SetOverride,      // write driver_override ("" clears it)
    Unbind,           // drivers/<driver>/unbind, wait for udev's unbind
    Resize,           // resourceN_resize while no driver is bound
    Probe,            // drivers_probe, wait for udev's bind of the expected driver
    CheckViable,      // every member of the groups is handed over or harmless
};

struct Step {
    StepKind kind;
    std::string description;
    std::optional<PciAddress> address{};
    std::string driver{};            // Unbind: the bound one; Probe: the expected one
    std::string value{};             // SetOverride: the new override; Stop/StartUnit: the unit
    unsigned bar = 0;                // Resize
    uint64_t size = 0;               // Resize: the new size in bytes
    int group = -1;                  // WaitVfioFree
    std::vector<PciAddress> devices{};  // WaitDrmHolders, CheckViable
    bool waitForDrmNode = false;     // Probe: a display device's host driver makes its card node
    bool bestEffort = false;         // Resize on release: a failure is reported, not fatal
    HolderPolicy holders = HolderPolicy::Wait;  // WaitDrmHolders
};

// A target driver that accepts whatever the kernel's own matching binds (RebindDevice "").
inline constexpr const char* kDefaultDriver = "(default)";

// Where the devices should end up, and what goes around the moves.
struct Transition {
    std::vector<std::pair<PciAddress, DeviceSetting>> targets;  // in this order
    // Stopped first, in this order: the profile's stop_units, then the display manager.
    std::vector<std::string> stopUnits;
    // Of those, started again at the end of this operation (the display manager, "restart").
    std::vector<std::string> restartUnits;
    // Only started at the end: what a prepare left stopped, or what a rollback restores.
    std::vector<std::string> startUnits;
    bool checkViable = false;   // after the moves (PrepareVM)
    bool barsBestEffort = false;
    HolderPolicy holders = HolderPolicy::Wait;
};

// Starting a unit again: the end of a plan, or what a failed rollback still does.
inline Step startUnitStep(const std::string& unit)
{
    return {.kind = StepKind::StartUnit, .description = "start " + unit, .value = unit};
}

// Starting units again, in this order: what a rollback still does when its plan failed.
inline std::vector<Step> startUnitSteps(const std::vector<std::string>& units)
{
    std::vector<Step> steps;
    steps.reserve(units.size());
    for (const std::string& unit : units)
        steps.push_back(startUnitStep(unit));
    return steps;
}

// The steps that take the machine from `present` to the transition's targets. Pure: the
// same input gives the same steps, for dry-run and for the run itself.
std::vector<Step> planTransition(const std::map<PciAddress, PciDevice>& present, bool vfioLoaded,
                                 const Transition& transition);

} // namespace gpuswap
