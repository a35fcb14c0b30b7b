// SPDX-License-Identifier: GPL-2.0-or-later
#pragma once

#include "config.hpp"
#include "errors.hpp"
#include "holders.hpp"
#include "pci_device.hpp"
#include "planner.hpp"
#include "sysfs_writer.hpp"
#include "udev_watch.hpp"
#include "unit_control.hpp"

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

struct sd_event;
struct sd_event_source;

namespace gpuswap {

// Runs a plan's steps one after the other on the event loop. Each step starts its
// action (a sysfs write on the worker, a systemd job, a holder lookup) and ends on the
// event that makes it true (udev's bind or unbind for the device, JobRemoved, the last
// holder's exit) or fails at its deadline from timeouts_ms. Nothing here sleeps.
class Executor {
public:
    struct Context {
        sd_event* event;
        const Sysfs& sysfs;
        SysfsWriter& writer;
        UnitControl& units;
    };
    // Before each step: the journal records it, the bus announces it.
    using BeforeStep = std::function<void(size_t index, const Step& step)>;
    // The failure, if any, and one line per step carried out (notes appended).
    using Finished = std::function<void(std::optional<Failure> failure, std::vector<std::string> lines)>;

    explicit Executor(Context context);
    ~Executor();
    Executor(const Executor&) = delete;
    Executor& operator=(const Executor&) = delete;

    void run(std::vector<Step> steps, const Timeouts& timeouts, BeforeStep beforeStep, Finished finished);
    bool running() const { return finished_ != nullptr; }
    // Ends the run after the step in progress, with ShuttingDown.
    void requestStop() { stopRequested_ = true; }

    // Every udev event comes here; the running step takes what it waits for.
    void onUdevEvent(const UdevEvent& event);

private:
    void startNext();
    void startStep(const Step& step);
    // Ends the running step; the next one starts from a fresh loop iteration.
    void complete(std::optional<Failure> failure, const std::string& note = {});
    void setDeadline(std::chrono::milliseconds timeout, std::function<Failure()> onTimeout);
    void clearStepState();
    void evaluate();

    void startUnitStep(const Step& step, bool start);
    // Until none of the nodes is held; `note` is appended to the step's line.
    void startHolderStep(std::map<dev_t, std::string> nodes, const std::string& note);
    void startWrite(const Step& step, const std::filesystem::path& path, const std::string& value,
                    std::function<void()> afterWrite);
    // The step's write passed its deadline: its device is wedged until the write returns.
    Failure wedged(const Step& step);
    void checkViable(const Step& step);
    void finishResize(const Step& step);

    Context context_;
    std::vector<Step> steps_;
    size_t next_ = 0;
    Timeouts timeouts_;
    BeforeStep beforeStep_;
    Finished finished_;
    std::vector<std::string> lines_;
    bool stopRequested_ = false;

    // The running step.
    const Step* step_ = nullptr;
    std::chrono::steady_clock::time_point stepStarted_{};
    uint64_t serial_ = 0;  // callbacks of an ended step carry an older serial and are ignored
    sd_event_source* deadline_ = nullptr;
    sd_event_source* resume_ = nullptr;
    std::function<Failure()> onTimeout_;
    bool writeDone_ = false;
    std::vector<UdevEvent> events_;
    std::map<dev_t, std::string> soundNodes_;
    std::unique_ptr<HolderWait> holderWait_;
    std::optional<Failure> pendingFailure_;
    std::string pendingNote_;
};

} // namespace gpuswap
