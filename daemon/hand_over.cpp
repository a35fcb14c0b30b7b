// SPDX-License-Identifier: GPL-2.0-or-later
#include "hand_over.hpp"

#include "bar_size.hpp"
#include "domain_xml.hpp"
#include "holders.hpp"
#include "iommu_group.hpp"
#include "log.hpp"
#include "text.hpp"

#include <systemd/sd-event.h>

#include <algorithm>
#include <set>

namespace gpuswap {

namespace {

constexpr const char* kVfio = "vfio-pci";

const PciDevice& existing(const std::map<PciAddress, PciDevice>& devices, const PciAddress& address)
{
    const auto it = devices.find(address);
    if (it == devices.end())
        throw Failure(ErrorCode::NoSuchDevice, "there is no PCI device " + address.str() + " (see lspci -D)");
    return it->second;
}

} // namespace

HandOver::HandOver(sd_event* event, const Sysfs& sysfs, SysfsWriter& writer, UnitControl& units, Journal journal,
                   const Config& config, Listener& listener, Reloader reloader)
    : event_(event), sysfs_(sysfs), writer_(writer), units_(units), journal_(std::move(journal)), config_(config), listener_(listener),
      reloader_(std::move(reloader)), executor_({event, sysfs, writer, units}), state_(journal_.load())
{
}

HandOver::~HandOver() { sd_event_source_disable_unref(next_); }

void HandOver::refuseWedged(const PciAddress& address) const
{
    if (writer_.inFlight(address))
        throw Failure(ErrorCode::DeviceBusy, address.str() + " is wedged: " + writer_.describe(address) +
                                                 "; nothing touches it until that write returns (a reboot frees it)");
}

std::vector<std::string> HandOver::preparedVms() const
{
    std::vector<std::string> names;
    for (const auto& [vm, record] : state_.prepared)
        names.push_back(vm);
    return names;
}

void HandOver::save() { journal_.save(state_); }

HandOver::Machine HandOver::readMachine() const
{
    Machine machine;
    for (PciDevice& device : sysfs_.readAllDevices())
        machine.devices.emplace(device.address, std::move(device));
    machine.vfioLoaded = sysfs_.hasDriver(kVfio);
    return machine;
}

// ---- the requests ------------------------------------------------------------------------

// "keep" hands a GPU over under a running desktop: only one the desktop can lose.
void HandOver::refuseForKeep(const std::string& vm, const PciDevice& device)
{
    const std::string prefix = "profile " + vm + " keeps the display manager (\"display_manager\": \"keep\"), but " +
                               device.address.str();
    const std::string advice = ": set the profile's \"display_manager\" to \"restart\"";
    if (!device.isDisplayController())
        return;
    if (device.bootVga)
        throw Failure(ErrorCode::DeviceBusy, prefix + " is the boot display, which the console and the desktop use" + advice);
    if (device.driver == "nvidia")
        throw Failure(ErrorCode::DeviceBusy,
                      prefix + " is on NVIDIA's driver, which cannot let go of a GPU a compositor has open" + advice);
    if (!device.enabledConnectors.empty()) {
        std::string connectors;
        for (const std::string& connector : device.enabledConnectors)
            connectors += (connectors.empty() ? "" : ", ") + connector;
        throw Failure(ErrorCode::DeviceBusy, prefix + " drives a screen (" + connectors + " enabled)" + advice +
                                                 ", or move that screen to the GPU that stays");
    }
}

HandOver::Draft HandOver::resolvePrepare(const std::string& vm, const RequestOptions& options, const Machine& machine) const
{
    Draft draft;
    if (state_.prepared.contains(vm))
        return draft;  // already prepared: success with no steps
    const auto profile = profileFor(vm, options);
    if (!profile)
        throw Failure(ErrorCode::NoSuchProfile, "no profile for VM \"" + vm + "\" in the configuration");
    const VmProfile& vmProfile = *profile;
    std::vector<PciAddress> devices = vmProfile.devices;
    if (devices.empty() && options.domainXml)
        devices = pciHostdevsOfDomain(*options.domainXml);
    if (devices.empty())
        throw Failure(ErrorCode::InvalidArgument, "profile " + vm + " lists no devices and the domain XML names no PCI hostdev");

    std::set<PciAddress> handedOver;
    for (const PciAddress& address : devices) {
        const PciDevice& device = existing(machine.devices, address);
        refuseWedged(address);
        if (vmProfile.displayManager == DisplayManagerPolicy::Keep)
            refuseForKeep(vm, device);
        for (const auto& [other, record] : state_.prepared)
            for (const auto& [owned, setting] : record.original)
                if (owned == address)
                    throw Failure(ErrorCode::DeviceBusy, address.str() + " belongs to the prepared VM " + other +
                                                             ": release it first");
        handedOver.insert(address);
    }
    std::vector<PciDevice> present;
    for (const auto& [address, device] : machine.devices)
        present.push_back(device);
    std::string blockers;
    const std::vector<PciDevice> blocking = viabilityBlockers(present, handedOver);
    for (const PciDevice& blocker : blocking)
        blockers += (blockers.empty() ? "" : ", ") + blocker.address.str() + " on " + blocker.driver;
    if (!blockers.empty())
        throw Failure(ErrorCode::NotViable, "the IOMMU group of " + vm + "'s devices also holds " + blockers +
                                                ": add them to the profile's devices (" +
                                                viableDevicesLine(handedOver, blocking) +
                                                ") or move the card to another slot");
    for (const auto& [address, sizes] : vmProfile.bars) {
        if (!handedOver.contains(address))
            continue;
        const PciDevice& device = existing(machine.devices, address);
        for (const auto& [index, size] : sizes) {
            uint64_t mask = 0;
            for (const PciBar& bar : device.bars)
                if (bar.index == index)
                    mask = bar.supportedMask;
            const auto bit = maskBitForSize(size);
            if (!bit || ((mask >> *bit) & 1U) == 0)
                throw Failure(ErrorCode::UnsupportedSize,
                              "BAR " + std::to_string(index) + " of " + address.str() + " cannot be " + formatSize(size) +
                                  "; supported: " + formatSizeList(sizesInMask(mask)));
            if (const auto why = cannotGrow(device, index, size))
                throw Failure(ErrorCode::UnsupportedSize, *why);
        }
    }

    for (const PciAddress& address : devices) {
        const auto bars = vmProfile.bars.contains(address) ? vmProfile.bars.at(address) : std::map<unsigned, uint64_t>{};
        draft.transition.targets.emplace_back(address, DeviceSetting{kVfio, kVfio, bars});
        draft.before.emplace_back(address, currentSetting(machine.devices.at(address), bars));
    }
    draft.transition.checkViable = true;
    // "keep": the compositor lets go of the GPU's DRM nodes on udev's remove event, which
    // comes only after the unbind: waiting for it would wait forever.
    draft.transition.holders = vmProfile.displayManager == DisplayManagerPolicy::Keep ? HolderPolicy::Ignore : vmProfile.holders;
    if (vmProfile.displayManager != DisplayManagerPolicy::Keep)
        draft.displayManagerUnit = config_.displayManagerUnit;
    // "stop" (one GPU): the display manager stays stopped while the VM runs, as stop_units do.
    draft.restartDisplayManager = vmProfile.displayManager != DisplayManagerPolicy::Stop;
    draft.stopUnits = vmProfile.stopUnits;
    draft.commit = [vm, original = draft.before, unit = draft.displayManagerUnit](DaemonState& state, const Transition& ran) {
        std::vector<std::string> leftStopped;
        for (const std::string& stopped : ran.stopUnits)
            if (std::find(ran.restartUnits.begin(), ran.restartUnits.end(), stopped) == ran.restartUnits.end())
                leftStopped.push_back(stopped);
        state.prepared[vm] = {original, unit, leftStopped};
    };
    return draft;
}

std::optional<VmProfile> HandOver::profileFor(const std::string& vm, const RequestOptions& options) const
{
    // The configuration file wins; else the domain's own metadata (only root's hook passes it).
    if (const auto profile = config_.vms.find(vm); profile != config_.vms.end())
        return profile->second;
    if (options.domainXml)
        return profileOfDomain(*options.domainXml, vm);
    return std::nullopt;
}

void HandOver::prepare(const std::string& vm, const RequestOptions& options, Reply reply)
{
    try {
        if (!profileFor(vm, options)) {
            reply(Failure(ErrorCode::NoSuchProfile, "no profile for VM \"" + vm + "\" in the configuration or its domain's metadata"), {});
            return;
        }
    } catch (const Failure& failure) {
        reply(failure, {});
        return;
    }
    submit({"prepare:" + vm, options,
            [this, vm, options](const Machine& machine) { return resolvePrepare(vm, options, machine); },
            std::move(reply)});
}

HandOver::Draft HandOver::resolveRelease(const std::string& vm, const Machine& machine) const
{
    Draft draft;
    const auto record = state_.prepared.find(vm);
    if (record == state_.prepared.end())
        return draft;  // not prepared: success with no steps
    for (const auto& [address, setting] : record->second.original) {
        const PciDevice& device = existing(machine.devices, address);
        refuseWedged(address);
        draft.transition.targets.emplace_back(address, setting);
        draft.before.emplace_back(address, currentSetting(device, setting.barSizes));
    }
    draft.transition.barsBestEffort = true;
    draft.displayManagerUnit = record->second.displayManagerUnit;
    draft.transition.startUnits = record->second.leftStopped;
    draft.commit = [vm](DaemonState& state, const Transition&) { state.prepared.erase(vm); };
    return draft;
}

void HandOver::release(const std::string& vm, const RequestOptions& options, Reply reply)
{
    submit({"release:" + vm, options, [this, vm](const Machine& machine) { return resolveRelease(vm, machine); },
            std::move(reply)});
}

void HandOver::rebind(const PciAddress& address, const std::string& driver, const RequestOptions& options, Reply reply)
{
    submit({"rebind:" + address.str(), options,
            [this, address, driver, force = options.force](const Machine& machine) {
                const PciDevice& device = existing(machine.devices, address);
                refuseWedged(address);
                if (!driver.empty() && driver != kVfio && !sysfs_.hasDriver(driver))
                    throw Failure(ErrorCode::NoSuchDriver, "there is no PCI driver " + driver + " (is its module loaded?)");
                for (const auto& [vm, record] : state_.prepared)
                    for (const auto& [owned, setting] : record.original)
                        if (owned == address && !force)
                            throw Failure(ErrorCode::DeviceBusy, address.str() + " belongs to the prepared VM " + vm +
                                                                     ": release it first, or pass force");
                Draft draft;
                draft.outcome.previousDriver = device.driver;
                if (!force) {
                    DeviceNodes nodes = deviceNodes(sysfs_.devicePath(address));
                    nodes.drm.merge(nodes.sound);
                    const auto holders = findHolders(nodes.drm);
                    if (!holders.empty())
                        throw Failure(ErrorCode::DeviceBusy,
                                      address.str() + " is in use: " + describeHolders(holders) +
                                          "; close these programs or pass force",
                                      address.str() + " is in use by " + std::to_string(holders.size()) +
                                          " open file(s); close them or pass force");
                }
                const DeviceSetting target{driver.empty() ? std::string(kDefaultDriver) : driver, driver};
                if (device.driver == driver && device.driverOverride == driver && !driver.empty())
                    return draft;
                draft.transition.targets.emplace_back(address, target);
                draft.transition.holders = HolderPolicy::Ignore;
                draft.before.emplace_back(address, currentSetting(device));
                return draft;
            },
            std::move(reply)});
}

void HandOver::resize(const PciAddress& address, unsigned bar, uint64_t size, const RequestOptions& options, Reply reply)
{
    submit({"resize:" + address.str(), options,
            [this, address, bar, size](const Machine& machine) {
                const PciDevice& device = existing(machine.devices, address);
                refuseWedged(address);
                const auto it = std::find_if(device.bars.begin(), device.bars.end(),
                                             [bar](const PciBar& b) { return b.index == bar; });
                if (it == device.bars.end() || it->supportedMask == 0)
                    throw Failure(ErrorCode::UnsupportedSize,
                                  "BAR " + std::to_string(bar) + " of " + address.str() + " cannot be resized");
                const auto bit = maskBitForSize(size);
                if (!bit || ((it->supportedMask >> *bit) & 1U) == 0)
                    throw Failure(ErrorCode::UnsupportedSize, "BAR " + std::to_string(bar) + " of " + address.str() +
                                                                  " cannot be " + formatSize(size) + "; supported: " +
                                                                  formatSizeList(sizesInMask(it->supportedMask)));
                if (!device.driver.empty() && device.driver != kVfio)
                    throw Failure(ErrorCode::DeviceBusy, address.str() + " is bound to " + device.driver +
                                                             ": a BAR is resized only without a driver or on vfio-pci");
                Draft draft;
                draft.outcome.previousSize = it->size;
                const std::map<unsigned, uint64_t> sizes{{bar, size}};
                draft.transition.targets.emplace_back(address, DeviceSetting{device.driver, device.driverOverride, sizes});
                draft.before.emplace_back(address, currentSetting(device, sizes));
                return draft;
            },
            std::move(reply)});
}

void HandOver::reload(Reply reply)
{
    submit({"reload", {},
            [this](const Machine&) {
                reloader_();
                return Draft{};
            },
            std::move(reply)});
}

// ---- the queue --------------------------------------------------------------------------

void HandOver::submit(Request request)
{
    if (shuttingDown_) {
        request.reply(Failure(ErrorCode::ShuttingDown, "gpuswapd is stopping"), {});
        return;
    }
    auto shared = std::make_shared<Request>(std::move(request));
    if (shared->options.dryRun) {
        // A plan changes nothing: it needs no turn.
        try {
            Draft draft = shared->resolve(readMachine());
            planAndRun(shared, std::move(draft));
        } catch (const Failure& failure) {
            shared->reply(failure, {});
        }
        return;
    }
    if (current_ || !queue_.empty()) {
        if (shared->options.noQueue) {
            shared->reply(Failure(ErrorCode::Busy, "gpuswapd is busy with " + operationName_ + " (no-queue was given)"), {});
            return;
        }
        log::info(shared->name + " waits for " + operationName_ + " to finish", {{"OPERATION", shared->name}});
        queue_.push_back(std::move(shared));
        return;
    }
    start(shared);
}

void HandOver::startNextLater()
{
    if (next_ != nullptr)
        return;
    sd_event_add_defer(event_, &next_, [](sd_event_source*, void* userdata) -> int {
        auto* self = static_cast<HandOver*>(userdata);
        sd_event_source_disable_unref(self->next_);
        self->next_ = nullptr;
        if (self->current_ || self->queue_.empty())
            return 0;
        auto request = std::move(self->queue_.front());
        self->queue_.pop_front();
        self->start(request);
        return 0;
    }, this);
}

void HandOver::start(const std::shared_ptr<Request>& request)
{
    current_ = request;
    operationName_ = request->name;
    started_ = std::chrono::steady_clock::now();
    log::beginOperation(request->name);
    log::info(request->name + " started", {{"MESSAGE_ID", log::kOperationStarted}});
    listener_.stateChanged();
    try {
        Draft draft = request->resolve(readMachine());
        planAndRun(request, std::move(draft));
    } catch (const Failure& failure) {
        finish(request, failure, {});
    } catch (const std::exception& e) {
        finish(request, Failure(ErrorCode::Internal, request->name + ": " + e.what()), {});
    }
}

void HandOver::planAndRun(const std::shared_ptr<Request>& request, Draft draft)
{
    const bool dryRun = request->options.dryRun;
    auto plan = [this, request, dryRun](Draft ready) {
        Machine machine = readMachine();
        // The machine may have changed while systemd was asked (a device removed).
        for (const auto& [address, setting] : ready.transition.targets)
            existing(machine.devices, address);
        std::vector<Step> steps = ready.transition.targets.empty() && ready.transition.stopUnits.empty()
                                      ? std::vector<Step>{}
                                      : planTransition(machine.devices, machine.vfioLoaded, ready.transition);
        if (dryRun) {
            Outcome outcome = ready.outcome;
            for (const Step& step : steps)
                outcome.steps.push_back(step.description);
            request->reply(std::nullopt, outcome);
            return;
        }
        execute(request, std::move(ready), std::move(steps));
    };
    // The units to stop if they run, in order: the profile's stop_units, then the display manager.
    std::vector<std::string> candidates = draft.stopUnits;
    if (!draft.displayManagerUnit.empty())
        candidates.push_back(draft.displayManagerUnit);
    if (candidates.empty() || draft.transition.targets.empty()) {
        plan(std::move(draft));
        return;
    }
    askActiveStates(request, std::make_shared<Draft>(std::move(draft)), std::move(candidates), 0, plan);
}

void HandOver::askActiveStates(const std::shared_ptr<Request>& request, const std::shared_ptr<Draft>& draft,
                               std::vector<std::string> units, size_t next, const std::function<void(Draft)>& plan)
{
    const bool dryRun = request->options.dryRun;
    // A dry run holds no turn: ending "the" operation would end someone else's.
    const auto fail = [this, request, dryRun](const Failure& failure) {
        if (dryRun)
            request->reply(failure, {});
        else
            finish(request, failure, {});
    };
    if (next == units.size()) {
        try {
            plan(std::move(*draft));
        } catch (const Failure& failure) {
            fail(failure);
        } catch (const std::exception& e) {
            fail(Failure(ErrorCode::Internal, request->name + ": " + e.what()));
        }
        return;
    }
    const std::string unit = units[next];
    units_.activeState(unit, [this, request, draft, units = std::move(units), next, plan, unit, fail](
                                 std::optional<std::string> error, const std::string& state) mutable {
        if (error) {
            fail(Failure(ErrorCode::DisplayManagerFailed,
                         *error + ": check \"display_manager\" (your display manager's unit) and the profile's "
                                  "\"stop_units\", or set the profile's \"display_manager\" to \"keep\""));
            return;
        }
        // Only a running unit is stopped, and so started again.
        if (state == "active" || state == "activating" || state == "reloading") {
            draft->transition.stopUnits.push_back(unit);
            if (unit == draft->displayManagerUnit && draft->restartDisplayManager)
                draft->transition.restartUnits.push_back(unit);
        }
        askActiveStates(request, draft, std::move(units), next + 1, plan);
    });
}

void HandOver::execute(const std::shared_ptr<Request>& request, Draft draft, std::vector<Step> steps)
{
    if (shuttingDown_) {
        finish(request, Failure(ErrorCode::ShuttingDown, "gpuswapd is stopping"), {});
        return;
    }
    if (steps.empty()) {
        if (draft.commit)
            draft.commit(state_, draft.transition);
        state_.operation.reset();  // an interrupted release found nothing left to do
        save();
        finish(request, std::nullopt, draft.outcome);
        return;
    }
    // A completed interrupted release starts with the display manager its first run stopped.
    state_.operation = OperationRecord{request->name, draft.before, draft.transition.startUnits, 0, false};
    save();
    const auto count = static_cast<unsigned>(steps.size());
    auto shared = std::make_shared<Draft>(std::move(draft));
    executor_.run(
        std::move(steps), config_.timeouts,
        [this, request, count](size_t index, const Step& step) {
            auto& stopped = state_.operation->stoppedUnits;
            if (step.kind == StepKind::StopUnit && std::find(stopped.begin(), stopped.end(), step.value) == stopped.end())
                stopped.push_back(step.value);
            state_.operation->step = static_cast<unsigned>(index + 1);
            save();
            listener_.progress(request->name, static_cast<unsigned>(index + 1), count, step.description);
        },
        [this, request, shared](std::optional<Failure> failure, std::vector<std::string> lines) {
            if (failure) {
                rollBack(request, *failure, std::move(lines));
                return;
            }
            if (shared->commit)
                shared->commit(state_, shared->transition);
            state_.operation.reset();
            save();
            Outcome outcome = shared->outcome;
            outcome.steps = std::move(lines);
            finish(request, std::nullopt, outcome);
        });
}

std::string HandOver::describeDevices(const DeviceSettings& settings) const
{
    std::string text;
    for (const auto& [address, wanted] : settings) {
        const auto device = sysfs_.readDevice(address);
        text += (text.empty() ? "" : "; ") + address.str() + " is on " +
                (!device ? "nothing (gone)" : device->driver.empty() ? "no driver" : device->driver) +
                " with driver_override \"" + (device ? device->driverOverride : "") + "\" (was " +
                (wanted.driver.empty() ? "no driver" : wanted.driver) + ", \"" + wanted.driverOverride + "\")";
    }
    return text;
}

void HandOver::rollBack(const std::shared_ptr<Request>& request, const Failure& failure, std::vector<std::string> lines)
{
    log::warning(request->name + " failed, rolling back: " + failure.what(), {{"OPERATION", request->name}});
    OperationRecord& record = *state_.operation;
    record.rollingBack = true;
    save();
    // A wedged device is left alone: any write to it would wait behind the stuck one.
    Transition transition;
    for (const auto& [address, setting] : record.before)
        if (!writer_.inFlight(address))
            transition.targets.emplace_back(address, setting);
    transition.startUnits = record.stoppedUnits;
    const Machine machine = readMachine();
    std::vector<Step> steps;
    try {
        for (const auto& [address, setting] : transition.targets)
            existing(machine.devices, address);
        steps = planTransition(machine.devices, machine.vfioLoaded, transition);
    } catch (const Failure& planFailure) {
        steps = startUnitSteps(record.stoppedUnits);
        runRollback(request, failure, std::move(lines), std::move(steps),
                    Failure(ErrorCode::Inconsistent, std::string("the rollback cannot be planned: ") + planFailure.what()));
        return;
    }
    runRollback(request, failure, std::move(lines), std::move(steps), std::nullopt);
}

void HandOver::runRollback(const std::shared_ptr<Request>& request, const Failure& failure, std::vector<std::string> lines,
                           std::vector<Step> steps, std::optional<Failure> earlierFailure)
{
    const auto count = static_cast<unsigned>(steps.size());
    executor_.run(
        std::move(steps), config_.timeouts,
        [this, request, count](size_t index, const Step& step) {
            state_.operation->step = static_cast<unsigned>(index + 1);
            save();
            listener_.progress(request->name, static_cast<unsigned>(index + 1), count, "roll back: " + step.description);
        },
        [this, request, failure, lines = std::move(lines), earlierFailure](const std::optional<Failure>& runFailure,
                                                                              const std::vector<std::string>&) mutable {
            if (earlierFailure) {
                // This run only started the display manager again after the rollback failed.
                std::optional<Failure> total = earlierFailure;
                if (runFailure)
                    total = Failure(ErrorCode::Inconsistent, std::string(earlierFailure->what()) + "; " + runFailure->what(),
                                    earlierFailure->publicMessage() + "; " + runFailure->publicMessage());
                endRollback(request, failure, std::move(lines), total);
                return;
            }
            // Whatever else failed, the user gets the desktop back: a rollback that stopped
            // short of the display manager's start still starts it (and the stop_units).
            const std::vector<std::string> stoppedUnits = state_.operation->stoppedUnits;
            if (runFailure && !stoppedUnits.empty() && runFailure->code() != ErrorCode::DisplayManagerFailed) {
                std::vector<Step> restart = startUnitSteps(stoppedUnits);
                runRollback(request, failure, std::move(lines), std::move(restart), runFailure);
                return;
            }
            endRollback(request, failure, std::move(lines), runFailure);
        });
}

void HandOver::endRollback(const std::shared_ptr<Request>& request, const Failure& failure, std::vector<std::string> lines,
                           const std::optional<Failure>& rollbackFailure)
{
    const DeviceSettings before = state_.operation->before;
    state_.operation.reset();
    save();
    std::string wedged;  // those the failure does not name already
    bool anyWedged = false;
    for (const auto& [address, setting] : before) {
        if (!writer_.inFlight(address))
            continue;
        anyWedged = true;
        const std::string named = address.str() + " is wedged";
        if (std::string_view(failure.what()).find(named) == std::string_view::npos)
            wedged += (wedged.empty() ? "" : "; ") + named + ": " + writer_.describe(address);
    }
    if (!rollbackFailure && !anyWedged) {
        finish(request, failure.extended("; everything was rolled back"), {std::move(lines), {}, 0});
        return;
    }
    Failure total(ErrorCode::Inconsistent, failure.what(), failure.publicMessage());
    if (rollbackFailure)
        total = Failure(ErrorCode::Inconsistent, total.what() + std::string("; rolling back failed too: ") + rollbackFailure->what(),
                        total.publicMessage() + "; rolling back failed too: " + rollbackFailure->publicMessage());
    else
        total = total.extended("; everything else was rolled back");
    if (!wedged.empty())
        total = total.extended(". Left alone: " + wedged);
    if (anyWedged)
        total = total.extended(". A wedged device stays as it is until its write returns, often only with a reboot");
    finish(request, total.extended(". Now: " + describeDevices(before) +
                                   ". Check the devices with gpuswapctl status and fix them with gpuswapctl rebind, or reboot."),
           {});
}

void HandOver::finish(const std::shared_ptr<Request>& request, std::optional<Failure> failure, Outcome outcome)
{
    const std::string took = secondsText(std::chrono::steady_clock::now() - started_);
    if (failure)
        log::warning(request->name + " failed after " + took + ": " + failure->what(),
                     {{"MESSAGE_ID", log::kOperationFailed}, {"ERROR", errorName(failure->code())}});
    else
        log::info(request->name + " done in " + std::to_string(outcome.steps.size()) + " steps, " + took,
                  {{"MESSAGE_ID", log::kOperationSucceeded}});
    log::endOperation();
    // The bus layer sends the signal and the reply safely (sendSafely): neither throws.
    listener_.finished(request->name, failure);
    request->reply(failure, std::move(outcome));
    current_.reset();
    operationName_.clear();
    listener_.stateChanged();
    if (shuttingDown_) {
        if (whenIdle_)
            std::exchange(whenIdle_, nullptr)();
        return;
    }
    startNextLater();
}

void HandOver::recover()
{
    if (!state_.operation)
        return;
    const OperationRecord interrupted = *state_.operation;
    const auto logOutcome = [name = interrupted.name](std::optional<Failure> failure, const Outcome&) {
        if (failure)
            log::error("could not finish the interrupted " + name + ": " + failure->what(), {{"OPERATION", name}});
        else
            log::info("finished the interrupted " + name, {{"OPERATION", name}});
    };
    constexpr std::string_view kRelease = "release:";
    if (interrupted.name.starts_with(kRelease)) {
        // Its VM is gone: never leave its devices on vfio-pci. The release runs again from
        // what prepare recorded, and starts the display manager its first run stopped.
        log::warning(interrupted.name + " was interrupted at step " + std::to_string(interrupted.step) + "; completing it",
                     {{"OPERATION", interrupted.name}});
        const std::string vm = interrupted.name.substr(kRelease.size());
        start(std::make_shared<Request>(Request{interrupted.name, {},
                                                [this, vm, stopped = interrupted.stoppedUnits](const Machine& machine) {
                                                    Draft draft = resolveRelease(vm, machine);
                                                    draft.transition.startUnits = stopped;
                                                    return draft;
                                                },
                                                logOutcome}));
        return;
    }
    log::warning(interrupted.name + " was interrupted at step " + std::to_string(interrupted.step) + "; rolling it back",
                 {{"OPERATION", interrupted.name}});
    auto request = std::make_shared<Request>(Request{"recover:" + interrupted.name, {}, nullptr, logOutcome});
    current_ = request;
    operationName_ = request->name;
    started_ = std::chrono::steady_clock::now();
    log::beginOperation(request->name);
    log::info(request->name + " started", {{"MESSAGE_ID", log::kOperationStarted}});
    listener_.stateChanged();
    rollBack(request, Failure(ErrorCode::Internal, "gpuswapd stopped in the middle of " + interrupted.name), {});
}

void HandOver::shutdown(std::function<void()> whenIdle)
{
    shuttingDown_ = true;
    for (auto& request : queue_)
        request->reply(Failure(ErrorCode::ShuttingDown, "gpuswapd is stopping"), {});
    queue_.clear();
    if (!current_) {
        whenIdle();
        return;
    }
    whenIdle_ = std::move(whenIdle);
    executor_.requestStop();
}

} // namespace gpuswap
