// SPDX-License-Identifier: GPL-2.0-or-later
#include "planner.hpp"

#include "bar_size.hpp"

#include <algorithm>
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

// What one device needs: which writes, in which order, is decided in plan().
struct Move {
    const PciDevice* device;
    const DeviceSetting* target;
    std::map<unsigned, uint64_t> bars{};  // the BARs whose size changes
    bool unbind = false;
    std::string probe{};                  // the driver a probe must bind, "" = no probe
    std::string pin{};                    // driver_override while unbinding and probing
    bool toHostDriver() const { return !probe.empty() && probe != kVfio; }
};

bool byAddress(const Move& a, const Move& b) { return a.device->address < b.device->address; }

Move moveFor(const PciDevice& device, const DeviceSetting& target)
{
    Move move{&device, &target};
    for (const auto& [index, size] : target.barSizes)
        if (barSize(device, index) != size)
            move.bars.emplace(index, size);
    const bool anyDriver = target.driver == kDefaultDriver;
    // "(default)" names no driver: the device is always reprobed for it.
    const bool keepsDriver = !device.driver.empty() && device.driver == target.driver;
    // The kernel resizes a BAR only while no driver at all is bound.
    move.unbind = !device.driver.empty() && (!keepsDriver || !move.bars.empty());
    if (!target.driver.empty() && (move.unbind || device.driver.empty()))
        move.probe = target.driver;
    // The override decides what a probe binds: pinned to the target driver, or the
    // first matching one would bind (nouveau before nvidia, radeon before amdgpu).
    move.pin = !move.probe.empty() && !anyDriver ? move.probe : target.driverOverride;
    return move;
}

class Planner {
public:
    Planner(const std::map<PciAddress, PciDevice>& present, const Transition& transition)
        : present_(present), transition_(transition)
    {
    }

    std::vector<Step> plan(bool vfioLoaded)
    {
        std::vector<Move> detaching;
        std::vector<Move> attaching;
        for (const auto& [address, target] : transition_.targets) {
            Move move = moveFor(present_.at(address), target);
            (move.toHostDriver() ? attaching : detaching).push_back(std::move(move));
        }
        const bool needsVfio = std::any_of(detaching.begin(), detaching.end(), [](const Move& move) { return move.probe == kVfio; });
        if (needsVfio && !vfioLoaded)
            steps_.push_back({StepKind::LoadVfio, "load vfio-pci (start modprobe@vfio_pci.service)"});
        for (const std::string& unit : transition_.stopUnits)
            steps_.push_back({.kind = StepKind::StopUnit, .description = "stop " + unit, .value = unit});
        planDrmHolders(detaching, attaching);
        planDetach(detaching);
        planAttach(attaching);
        if (transition_.checkViable)
            planViabilityCheck();
        std::vector<std::string> started;
        for (const auto* units : {&transition_.startUnits, &transition_.restartUnits})
            for (const std::string& unit : *units)
                if (std::find(started.begin(), started.end(), unit) == started.end()) {
                    started.push_back(unit);
                    steps_.push_back(startUnitStep(unit));
                }
        return std::move(steps_);
    }

private:
    // Before the first unbind from a host driver: nothing may have the DRM nodes open
    // (or, with "holders": "ignore", their holders are noted). NVIDIA's nodes are always
    // waited for: its remove() never returns while one is open. Sound nodes are only
    // noted: the unbind itself waits until their files are closed (snd_card_free), and
    // their holders see the card disconnected first.
    void planDrmHolders(const std::vector<Move>& detaching, const std::vector<Move>& attaching)
    {
        std::vector<PciAddress> devices;
        std::string drm;
        std::string nvidia;
        std::vector<const Move*> moves;
        for (const auto* group : {&detaching, &attaching})
            for (const Move& move : *group)
                moves.push_back(&move);
        std::sort(moves.begin(), moves.end(), [](const Move* a, const Move* b) { return byAddress(*a, *b); });
        for (const Move* move : moves) {
            const PciDevice& device = *move->device;
            if (!move->unbind || device.driver == kVfio)
                continue;
            devices.push_back(device.address);
            if (!device.drmNodes.empty())
                drm += (drm.empty() ? "" : ", ") + nodeList(device);
            if (!device.nvidiaNode.empty())
                nvidia += (nvidia.empty() ? "" : ", ") + device.nvidiaNode;
        }
        if (devices.empty())
            return;
        const bool ignore = transition_.holders == HolderPolicy::Ignore;
        std::string noted;
        std::string waited = nvidia;
        if (ignore && !drm.empty())
            noted = "note the processes that hold " + drm;
        else if (!drm.empty())
            waited = drm + (nvidia.empty() ? "" : ", ") + nvidia;
        std::string description = noted;
        if (!waited.empty())
            description += (description.empty() ? "" : "; ") + std::string("wait until no process holds ") + waited;
        if (description.empty()) {
            std::string names;
            for (const PciAddress& address : devices)
                names += (names.empty() ? "" : ", ") + address.str();
            description = "note the processes that hold the sound nodes of " + names;
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

    void unbind(const Move& move)
    {
        const PciDevice& device = *move.device;
        if (device.driver == kVfio && device.iommuGroup >= 0 && vfioChecked_.insert(device.iommuGroup).second)
            steps_.push_back({.kind = StepKind::WaitVfioFree,
                              .description = "wait until no process holds /dev/vfio/" + std::to_string(device.iommuGroup),
                              .group = device.iommuGroup});
        steps_.push_back({.kind = StepKind::Unbind,
                          .description = "unbind " + device.address.str() + " from " + device.driver,
                          .address = device.address,
                          .driver = device.driver});
    }

    void probe(const Move& move)
    {
        const bool anyDriver = move.probe == kDefaultDriver;
        steps_.push_back({.kind = StepKind::Probe,
                          .description = "bind " + move.device->address.str() + " to " +
                                         (anyDriver ? std::string("its default driver") : move.probe),
                          .address = move.device->address,
                          .driver = move.probe,
                          .waitForDrmNode = move.target->cardNode && move.toHostDriver() && !anyDriver});
    }

    void resize(const Move& move)
    {
        for (const auto& [index, size] : move.bars)
            steps_.push_back({.kind = StepKind::Resize,
                              .description = "resize BAR " + std::to_string(index) + " of " + move.device->address.str() +
                                             " from " + formatSize(barSize(*move.device, index)) + " to " + formatSize(size),
                              .address = move.device->address,
                              .bar = index,
                              .size = size,
                              .bestEffort = transition_.barsBestEffort});
    }

    void setOverride(const PciDevice& device, const std::string& value)
    {
        steps_.push_back({.kind = StepKind::SetOverride,
                          .description = value.empty() ? "clear driver_override of " + device.address.str()
                                                       : "set driver_override of " + device.address.str() + " to " + value,
                          .address = device.address,
                          .value = value});
    }

    // Before the move's unbind or probe.
    void pin(const Move& move)
    {
        if (move.device->driverOverride != move.pin)
            setOverride(*move.device, move.pin);
    }

    // After its probe: the override the device is to keep.
    void unpin(const Move& move)
    {
        if (move.pin != move.target->driverOverride)
            setOverride(*move.device, move.target->driverOverride);
    }

    // To vfio-pci (or to no driver): every function lets go, highest function first (the
    // HDMI-audio consumer before the GPU it depends on), then the BARs change with no
    // driver bound, then each is probed once.
    void planDetach(std::vector<Move> moves)
    {
        std::sort(moves.begin(), moves.end(), [](const Move& a, const Move& b) { return byAddress(b, a); });
        for (const Move& move : moves) {
            pin(move);
            if (move.unbind)
                unbind(move);
        }
        for (const Move& move : moves)
            resize(move);
        std::reverse(moves.begin(), moves.end());
        for (const Move& move : moves) {
            if (!move.probe.empty())
                probe(move);
            unpin(move);
        }
    }

    // Back to host drivers: one device after the other, the GPU function first (its
    // driver provides the audio component the HDMI-audio function binds to).
    void planAttach(std::vector<Move> moves)
    {
        std::sort(moves.begin(), moves.end(), byAddress);
        for (const Move& move : moves) {
            pin(move);
            if (move.unbind)
                unbind(move);
            resize(move);
            probe(move);
            unpin(move);
        }
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
