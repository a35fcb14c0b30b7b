// SPDX-License-Identifier: GPL-2.0-or-later
#include "executor.hpp"

#include "bar_size.hpp"
#include "iommu_group.hpp"
#include "log.hpp"
#include "text.hpp"

#include <systemd/sd-event.h>

#include <cstring>
#include <set>
#include <system_error>

namespace gpuswap {

namespace fs = std::filesystem;

namespace {

constexpr const char* kVfioModprobeUnit = "modprobe@vfio_pci.service";

std::string errnoText(int error) { return std::string(strerrorname_np(error)) + " (" + std::strerror(error) + ")"; }

Failure kernelRefused(const fs::path& path, int error)
{
    return Failure(ErrorCode::KernelRefused, "writing " + path.string() + " failed: " + errnoText(error));
}


} // namespace

Executor::Executor(Context context) : context_(context) {}

Executor::~Executor()
{
    clearStepState();
    sd_event_source_disable_unref(resume_);
}

void Executor::run(std::vector<Step> steps, const Timeouts& timeouts, BeforeStep beforeStep, Finished finished)
{
    steps_ = std::move(steps);
    next_ = 0;
    timeouts_ = timeouts;
    beforeStep_ = std::move(beforeStep);
    finished_ = std::move(finished);
    lines_.clear();
    stopRequested_ = false;
    complete(std::nullopt);  // starts step 0 from the loop
}

void Executor::clearStepState()
{
    ++serial_;
    sd_event_source_disable_unref(deadline_);
    deadline_ = nullptr;
    onTimeout_ = nullptr;
    holderWait_.reset();
    writeDone_ = false;
    events_.clear();
    soundNodes_.clear();
    step_ = nullptr;
}

void Executor::complete(std::optional<Failure> failure, const std::string& note)
{
    if (step_ != nullptr) {
        lines_.push_back(step_->description + note);
        const auto took = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - stepStarted_);
        log::info(std::string(failure ? "failed" : "done") + " after " + secondsText(took) + ": " + step_->description,
                  {{"STEP_USEC", std::to_string(took.count())}});
        log::setStep(0);
    }
    clearStepState();
    pendingFailure_ = std::move(failure);
    // Resume from a fresh iteration of the loop: a step may end inside the callback of
    // the object (holder wait, udev event) that this would otherwise destroy under it.
    if (resume_ == nullptr) {
        sd_event_add_defer(context_.event, &resume_, [](sd_event_source*, void* userdata) -> int {
            auto* self = static_cast<Executor*>(userdata);
            sd_event_source_disable_unref(self->resume_);
            self->resume_ = nullptr;
            self->startNext();
            return 0;
        }, this);
    }
}

void Executor::startNext()
{
    std::optional<Failure> failure = std::move(pendingFailure_);
    pendingFailure_.reset();
    if (!failure && stopRequested_ && next_ < steps_.size())
        failure = Failure(ErrorCode::ShuttingDown, "gpuswapd is stopping");
    if (failure || next_ >= steps_.size()) {
        auto finished = std::move(finished_);
        finished_ = nullptr;
        finished(std::move(failure), std::move(lines_));
        return;
    }
    const size_t index = next_++;
    beforeStep_(index, steps_[index]);
    step_ = &steps_[index];
    stepStarted_ = std::chrono::steady_clock::now();
    log::setStep(static_cast<unsigned>(index + 1));
    log::info(step_->description);
    try {
        startStep(*step_);
    } catch (const Failure& e) {
        complete(e);
    } catch (const std::exception& e) {
        complete(Failure(ErrorCode::Internal, std::string("step \"") + step_->description + "\": " + e.what()));
    }
}

void Executor::setDeadline(std::chrono::milliseconds timeout, std::function<Failure()> onTimeout)
{
    onTimeout_ = std::move(onTimeout);
    sd_event_add_time_relative(
        context_.event, &deadline_, CLOCK_MONOTONIC, static_cast<uint64_t>(timeout.count()) * 1000, 0,
        [](sd_event_source*, uint64_t, void* userdata) -> int {
            auto* self = static_cast<Executor*>(userdata);
            self->complete(self->onTimeout_());
            return 0;
        },
        this);
}

void Executor::startStep(const Step& step)
{
    const uint64_t serial = serial_;
    switch (step.kind) {
    case StepKind::LoadVfio:
        if (context_.sysfs.hasDriver("vfio-pci")) {
            complete(std::nullopt, " (already loaded)");
            return;
        }
        setDeadline(timeouts_.unit, [this] {
            return Failure(ErrorCode::Timeout, std::string(kVfioModprobeUnit) + " did not finish within " + secondsText(timeouts_.unit));
        });
        // modprobe@.service is a oneshot without RemainAfterExit whose ExecStart=- ignores
        // modprobe's failure: the unit is inactive after its job and the job is "done"
        // either way. The driver's directory is the only proof; udev announces it (the
        // kernel's "add" of /bus/pci/drivers/vfio-pci), and modprobe has returned by the
        // end of the job, so by then it exists or never will.
        context_.units.runOnce(kVfioModprobeUnit, [this, serial](std::optional<std::string> error) {
            if (serial != serial_)
                return;
            if (error)
                complete(Failure(ErrorCode::NoSuchDriver, "cannot load vfio-pci: " + *error));
            else if (!context_.sysfs.hasDriver("vfio-pci"))
                complete(Failure(ErrorCode::NoSuchDriver,
                                 "modprobe could not load vfio-pci: see journalctl -u " + std::string(kVfioModprobeUnit) +
                                     " and check that the running kernel has the module (modinfo vfio-pci)"));
            else
                complete(std::nullopt);
        });
        return;
    case StepKind::StopUnit:
        startUnitStep(step, false);
        return;
    case StepKind::StartUnit:
        startUnitStep(step, true);
        return;
    case StepKind::WaitDrmHolders: {
        std::map<dev_t, std::string> drm;
        std::map<dev_t, std::string> sound;
        std::map<dev_t, std::string> nvidia;
        for (const PciAddress& address : step.devices) {
            DeviceNodes nodes = deviceNodes(context_.sysfs.devicePath(address));
            drm.merge(nodes.drm);
            sound.merge(nodes.sound);
            const auto device = context_.sysfs.readDevice(address);
            if (const dev_t number = device ? nodeNumber(device->nvidiaNode) : 0)
                nvidia.emplace(number, device->nvidiaNode);
        }
        std::string note;
        if (step.holders == HolderPolicy::Ignore) {
            const auto ignored = findHolders(drm);
            note = ignored.empty() ? std::string(": none") : ": ignored " + describeHolders(ignored);
            drm.clear();
        }
        const auto soundHolders = findHolders(sound);
        if (!soundHolders.empty())
            note += "; sound nodes in use (the unbind disconnects them and waits until they are closed): " +
                    describeHolders(soundHolders);
        drm.merge(nvidia);
        if (drm.empty()) {
            complete(std::nullopt, note);
            return;
        }
        startHolderStep(std::move(drm), note);
        return;
    }
    case StepKind::WaitVfioFree: {
        const dev_t number = readDeviceNumber(context_.sysfs.root() / "class/vfio" / std::to_string(step.group) / "dev");
        if (number == 0) {
            complete(std::nullopt);
            return;
        }
        startHolderStep({{number, "/dev/vfio/" + std::to_string(step.group)}}, {});
        return;
    }
    case StepKind::SetOverride: {
        const fs::path path = context_.sysfs.devicePath(*step.address) / "driver_override";
        setDeadline(timeouts_.bind, [this, &step] { return wedged(step); });
        // "\n" clears an override; a zero-length write would change nothing.
        startWrite(step, path, step.value.empty() ? "\n" : step.value, [this, &step, path] {
            const auto device = context_.sysfs.readDevice(*step.address);
            if (!device || device->driverOverride != step.value)
                complete(Failure(ErrorCode::KernelRefused, path.string() + " reads \"" +
                                                               (device ? device->driverOverride : "") + "\" after writing \"" +
                                                               step.value + "\""));
            else
                complete(std::nullopt);
        });
        return;
    }
    case StepKind::Unbind:
    case StepKind::Probe: {
        const bool unbind = step.kind == StepKind::Unbind;
        const fs::path path = unbind ? context_.sysfs.driverPath(step.driver) / "unbind"
                                     : context_.sysfs.root() / "bus/pci/drivers_probe";
        if (unbind) {
            // The files of its sound nodes keep an HDA unbind waiting: name their holders
            // if it never returns (the nodes themselves are gone by then).
            soundNodes_ = deviceNodes(context_.sysfs.devicePath(*step.address)).sound;
        }
        setDeadline(timeouts_.bind, [this, &step, unbind] {
            if (!writeDone_) {
                Failure failure = wedged(step);
                const auto holders = findHolders(soundNodes_);
                if (holders.empty())
                    return failure;
                return Failure(failure.code(),
                               failure.what() + ("; its sound nodes are still open: " + describeHolders(holders) +
                                                 " (close these programs)"),
                               failure.publicMessage() + "; its sound nodes are still open");
            }
            return Failure(ErrorCode::Timeout, "udev did not report " + step.address->str() +
                                                   (unbind ? " unbound from " : " bound to ") + step.driver +
                                                   (step.waitForDrmNode ? " with its DRM card node" : "") + " within " +
                                                   secondsText(timeouts_.bind));
        });
        startWrite(step, path, step.address->str(), [this] { evaluate(); });
        return;
    }
    case StepKind::Resize: {
        const auto bit = maskBitForSize(step.size);
        const fs::path path = context_.sysfs.devicePath(*step.address) / ("resource" + std::to_string(step.bar) + "_resize");
        setDeadline(timeouts_.bind, [this, &step] { return wedged(step); });
        context_.writer.write(path, std::to_string(bit.value_or(0)), *step.address, [this, serial, &step, path](int error) {
            if (serial != serial_)
                return;
            if (error != 0) {
                if (step.bestEffort)
                    complete(std::nullopt, " failed: " + errnoText(error) + "; the BAR keeps its size");
                else
                    complete(kernelRefused(path, error));
                return;
            }
            finishResize(step);
        });
        return;
    }
    case StepKind::CheckViable:
        checkViable(step);
        return;
    }
}

void Executor::finishResize(const Step& step)
{
    const auto device = context_.sysfs.readDevice(*step.address);
    const uint64_t size = device ? barSize(*device, step.bar) : 0;
    if (size == step.size) {
        complete(std::nullopt);
        return;
    }
    const std::string what = "BAR " + std::to_string(step.bar) + " of " + step.address->str() + " is " +
                             formatSize(size) + " after resizing it to " + formatSize(step.size);
    if (step.bestEffort)
        complete(std::nullopt, " failed: " + what);
    else
        complete(Failure(ErrorCode::KernelRefused, what));
}

Failure Executor::wedged(const Step& step)
{
    context_.writer.markWedged(*step.address);
    return Failure(ErrorCode::Timeout, step.address->str() + " is wedged: " + context_.writer.describe(*step.address) +
                                           " (deadline " + secondsText(timeouts_.bind) + ")");
}

void Executor::startWrite(const Step& step, const fs::path& path, const std::string& value, std::function<void()> afterWrite)
{
    const uint64_t serial = serial_;
    context_.writer.write(path, value, *step.address, [this, serial, path, afterWrite = std::move(afterWrite)](int error) {
        if (serial != serial_)
            return;
        if (error != 0) {
            complete(kernelRefused(path, error));
            return;
        }
        writeDone_ = true;
        afterWrite();
    });
}

void Executor::startUnitStep(const Step& step, bool start)
{
    const uint64_t serial = serial_;
    setDeadline(timeouts_.unit, [this, &step, start] {
        return Failure(ErrorCode::DisplayManagerFailed, std::string(start ? "starting " : "stopping ") + step.value +
                                                            " did not finish within " + secondsText(timeouts_.unit));
    });
    auto finished = [this, serial, &step, start](std::optional<std::string> error) {
        if (serial != serial_)
            return;
        if (error)
            complete(Failure(ErrorCode::DisplayManagerFailed,
                             std::string("could not ") + (start ? "start " : "stop ") + step.value + ": " + *error));
        else
            complete(std::nullopt);
    };
    if (!start) {
        context_.units.stop(step.value, finished);
        return;
    }
    // Never bring the display manager back while the system shuts down.
    context_.units.systemState([this, serial, &step, finished](const std::optional<std::string>& error, const std::string& state) {
        if (serial != serial_)
            return;
        if (!error && state == "stopping") {
            log::info("not starting " + step.value + ": the system is shutting down");
            complete(std::nullopt, " (skipped: the system is shutting down)");
        }
        else
            context_.units.start(step.value, finished);
    });
}

void Executor::startHolderStep(std::map<dev_t, std::string> nodes, const std::string& note)
{
    setDeadline(timeouts_.holders, [this] {
        const auto& holders = holderWait_->holders();
        const std::string advice = "; close these programs (or use \"holders\": \"ignore\") and try again";
        return Failure(ErrorCode::DeviceBusy,
                       "still in use after " + secondsText(timeouts_.holders) + ": " + describeHolders(holders) + advice,
                       "still in use after " + secondsText(timeouts_.holders) + " by " + std::to_string(holders.size()) +
                           " open file(s)" + advice);
    });
    const uint64_t serial = serial_;
    holderWait_ = std::make_unique<HolderWait>(context_.event, std::move(nodes), [this, serial, note] {
        if (serial == serial_)
            complete(std::nullopt, note);
    });
}

void Executor::checkViable(const Step& step)
{
    const std::vector<PciDevice> present = context_.sysfs.readAllDevices();
    const std::set<PciAddress> handedOver(step.devices.begin(), step.devices.end());
    std::string offenders;
    for (const PciDevice& blocker : viabilityBlockers(present, handedOver))
        offenders += (offenders.empty() ? "" : ", ") + blocker.address.str() + " on " + blocker.driver;
    for (const PciAddress& address : step.devices) {
        const auto device = std::find_if(present.begin(), present.end(), [&](const PciDevice& d) { return d.address == address; });
        if (device == present.end() || device->driver != "vfio-pci")
            offenders += (offenders.empty() ? "" : ", ") + address.str() + " on " +
                         (device == present.end() ? "nothing (gone)" : device->driver.empty() ? "no driver" : device->driver);
    }
    if (offenders.empty())
        complete(std::nullopt);
    else
        complete(Failure(ErrorCode::NotViable, "the IOMMU group is not viable: " + offenders));
}

void Executor::onUdevEvent(const UdevEvent& event)
{
    if (step_ != nullptr && step_->kind == StepKind::LoadVfio && event.subsystem == "drivers" && event.action == "add" &&
        event.devpath.ends_with("/drivers/vfio-pci")) {
        complete(std::nullopt);
        return;
    }
    if (step_ == nullptr || (step_->kind != StepKind::Unbind && step_->kind != StepKind::Probe))
        return;
    if (!event.pciAddress || *event.pciAddress != *step_->address)
        return;
    events_.push_back(event);
    if (writeDone_)
        evaluate();
}

// Unbind and Probe end when the write returned AND udev reported the change (events
// can come before the write returns: the kernel sends them from inside it).
void Executor::evaluate()
{
    const Step& step = *step_;
    const auto device = context_.sysfs.readDevice(*step.address);
    if (!device) {
        complete(Failure(ErrorCode::NoSuchDevice, step.address->str() + " disappeared"));
        return;
    }
    const auto reported = [&](const char* action) {
        return std::find_if(events_.begin(), events_.end(), [&](const UdevEvent& e) {
            return e.subsystem == "pci" && e.action == action;
        });
    };
    if (step.kind == StepKind::Unbind) {
        if (reported("unbind") != events_.end() && device->driver.empty())
            complete(std::nullopt);
        return;
    }
    const auto bind = reported("bind");
    if (bind == events_.end())
        return;
    const bool anyDriver = step.driver == kDefaultDriver;
    if (!anyDriver && (bind->driver != step.driver || device->driver != step.driver)) {
        const std::string bound = device->driver.empty() ? bind->driver : device->driver;
        complete(Failure(ErrorCode::KernelRefused, "the kernel bound " + step.address->str() + " to " + bound +
                                                       " instead of " + step.driver));
        return;
    }
    const bool hasCard = std::any_of(device->drmNodes.begin(), device->drmNodes.end(),
                                     [](const std::string& node) { return node.starts_with("/dev/dri/card"); });
    if (!step.waitForDrmNode || hasCard)
        complete(std::nullopt);
}

} // namespace gpuswap
