#include "planner.hpp"

#include "bar_size.hpp"

#include <set>

namespace gpuswap {

namespace {

constexpr const char* kVfio = "vfio-pci";

std::string nodeList(const PciDevice& device)
{
    std::string text;
    for (const std::string& node : device.drmNodes)
        text += (text.empty() ? "" : ", ") + node;
    return text;
}

class Planner {
public:
    Planner(const std::map<PciAddress, PciDevice>& present, const Transition& transition)
        : present_(present), transition_(transition)
    {
    }

    std::vector<Step> plan(bool vfioLoaded)
    {
        const bool needsVfio = std::any_of(transition_.targets.begin(), transition_.targets.end(), [&](const auto& target) {
            return target.second.driver == kVfio && present_.at(target.first).driver != kVfio;
        });
        if (needsVfio && !vfioLoaded)
            steps_.push_back({StepKind::LoadVfio, "load vfio-pci (start modprobe@vfio_pci.service)"});
        if (!transition_.stopUnit.empty())
            steps_.push_back({.kind = StepKind::StopUnit, .description = "stop " + transition_.stopUnit,
                              .value = transition_.stopUnit});
        planDrmHolders();
        for (const auto& [address, target] : transition_.targets)
            planDevice(present_.at(address), target);
        if (transition_.checkViable)
            planViabilityCheck();
        const std::string& startUnit = transition_.stopUnit.empty() ? transition_.startUnit : transition_.stopUnit;
        if (!startUnit.empty())
            steps_.push_back({.kind = StepKind::StartUnit, .description = "start " + startUnit, .value = startUnit});
        return std::move(steps_);
    }

private:
    // Before the first unbind from a host driver: nothing may have the DRM nodes open
    // (sound nodes are only noted: ALSA survives an unbind with open files).
    void planDrmHolders()
    {
        std::vector<PciAddress> devices;
        std::string nodes;
        for (const auto& [address, target] : transition_.targets) {
            const PciDevice& device = present_.at(address);
            if (device.driver.empty() || device.driver == kVfio || target.driver == device.driver)
                continue;
            devices.push_back(address);
            if (!device.drmNodes.empty())
                nodes += (nodes.empty() ? "" : ", ") + nodeList(device);
        }
        if (devices.empty())
            return;
        std::string description;
        if (nodes.empty()) {
            std::string names;
            for (const PciAddress& address : devices)
                names += (names.empty() ? "" : ", ") + address.str();
            description = "note the processes that hold the sound nodes of " + names;
        } else {
            description = (transition_.holders == HolderPolicy::Ignore ? "note the processes that hold "
                                                                       : "wait until no process holds ") + nodes;
        }
        steps_.push_back({.kind = StepKind::WaitDrmHolders,
                          .description = description,
                          .devices = devices,
                          .holders = transition_.holders});
    }

    void planViabilityCheck()
    {
        std::set<int> groups;
        std::vector<PciAddress> devices;
        for (const auto& [address, target] : transition_.targets) {
            devices.push_back(address);
            if (present_.at(address).iommuGroup >= 0)
                groups.insert(present_.at(address).iommuGroup);
        }
        std::string names;
        for (int group : groups)
            names += (names.empty() ? "" : ", ") + std::to_string(group);
        steps_.push_back({.kind = StepKind::CheckViable,
                          .description = std::string("check that IOMMU group") + (groups.size() == 1 ? " " : "s ") +
                                         names + (groups.size() == 1 ? " is" : " are") + " viable",
                          .devices = devices});
    }

    void unbind(const PciDevice& device, const std::string& driver)
    {
        if (driver == kVfio && device.iommuGroup >= 0 && vfioChecked_.insert(device.iommuGroup).second)
            steps_.push_back({.kind = StepKind::WaitVfioFree,
                              .description = "wait until no process holds /dev/vfio/" + std::to_string(device.iommuGroup),
                              .group = device.iommuGroup});
        steps_.push_back({.kind = StepKind::Unbind,
                          .description = "unbind " + device.address.str() + " from " + driver,
                          .address = device.address,
                          .driver = driver});
    }

    void probe(const PciDevice& device, const std::string& driver)
    {
        const bool anyDriver = driver == kDefaultDriver;
        steps_.push_back({.kind = StepKind::Probe,
                          .description = "bind " + device.address.str() + " to " + (anyDriver ? "its default driver" : driver),
                          .address = device.address,
                          .driver = driver,
                          .waitForDrmNode = device.isDisplayController() && driver != kVfio && !anyDriver});
    }

    void resize(const PciDevice& device, unsigned index, uint64_t size)
    {
        steps_.push_back({.kind = StepKind::Resize,
                          .description = "resize BAR " + std::to_string(index) + " of " + device.address.str() + " from " +
                                         formatSize(barSize(device, index)) + " to " + formatSize(size),
                          .address = device.address,
                          .bar = index,
                          .size = size,
                          .bestEffort = transition_.barsBestEffort});
    }

    // BARs change only while no driver holds the device: on vfio-pci one BAR at a time
    // (unbind, resize, bind again), without a driver directly.
    void resizeBars(const PciDevice& device, const std::map<unsigned, uint64_t>& sizes, bool onVfio)
    {
        for (const auto& [index, size] : sizes) {
            if (onVfio)
                unbind(device, kVfio);
            resize(device, index, size);
            if (onVfio)
                probe(device, kVfio);
        }
    }

    void setOverride(const PciDevice& device, const std::string& value)
    {
        steps_.push_back({.kind = StepKind::SetOverride,
                          .description = value.empty() ? "clear driver_override of " + device.address.str()
                                                       : "set driver_override of " + device.address.str() + " to " + value,
                          .address = device.address,
                          .value = value});
    }

    void planDevice(const PciDevice& device, const DeviceSetting& target)
    {
        std::map<unsigned, uint64_t> bars;
        for (const auto& [index, size] : target.barSizes)
            if (barSize(device, index) != size)
                bars.emplace(index, size);
        std::string override = device.driverOverride;

        const bool startsFree = device.driver.empty() || device.driver == kVfio;
        if (startsFree && !bars.empty()) {
            const bool onVfio = device.driver == kVfio;
            // The cycle's probe must bring vfio-pci back, whatever bound it before.
            if (onVfio && override != kVfio) {
                setOverride(device, kVfio);
                override = kVfio;
            }
            resizeBars(device, bars, onVfio);
            bars.clear();
        }
        if (override != target.driverOverride)
            setOverride(device, target.driverOverride);
        if (device.driver != target.driver) {
            if (!device.driver.empty())
                unbind(device, device.driver);
            if (target.driver != kVfio && !bars.empty()) {
                resizeBars(device, bars, false);
                bars.clear();
            }
            if (!target.driver.empty())
                probe(device, target.driver);
        }
        if (!bars.empty())
            resizeBars(device, bars, target.driver == kVfio);
    }

    const std::map<PciAddress, PciDevice>& present_;
    const Transition& transition_;
    std::vector<Step> steps_;
    std::set<int> vfioChecked_;
};

} // namespace

std::vector<Step> planTransition(const std::map<PciAddress, PciDevice>& present, bool vfioLoaded,
                                 const Transition& transition)
{
    return Planner(present, transition).plan(vfioLoaded);
}

} // namespace gpuswap
