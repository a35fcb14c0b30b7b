// SPDX-License-Identifier: GPL-2.0-or-later
#pragma once

#include "config.hpp"
#include "errors.hpp"
#include "executor.hpp"
#include "journal.hpp"
#include "planner.hpp"
#include "request_options.hpp"

#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

struct sd_event;
struct sd_event_source;

namespace gpuswap {

// What a finished state-changing call answers.
struct Outcome {
    std::vector<std::string> steps;
    std::string previousDriver;
    uint64_t previousSize = 0;
};

// The state-changing operations: one at a time in arrival order, each resolved against
// the machine as it is at its turn, planned, journalled step by step, executed, and
// rolled back when a step fails. Also finishes an interrupted operation's rollback
// after a restart.
class HandOver {
public:
    class Listener {
    public:
        virtual void progress(const std::string& operation, unsigned step, unsigned steps, const std::string& description) = 0;
        virtual void finished(const std::string& operation, const std::optional<Failure>& failure) = 0;
        // Operation or PreparedVMs changed.
        virtual void stateChanged() = 0;

    protected:
        ~Listener() = default;
    };
    using Reply = std::function<void(std::optional<Failure> failure, Outcome outcome)>;
    // Re-reads the configuration; throws Failure(BadConfig) and keeps the old one.
    using Reloader = std::function<void()>;

    HandOver(sd_event* event, const Sysfs& sysfs, SysfsWriter& writer, UnitControl& units, Journal journal,
             const Config& config, Listener& listener, Reloader reloader);
    ~HandOver();
    HandOver(const HandOver&) = delete;
    HandOver& operator=(const HandOver&) = delete;

    // Each validates what needs no turn at once (a failure replies before returning).
    void prepare(const std::string& vm, const RequestOptions& options, Reply reply);
    void release(const std::string& vm, const RequestOptions& options, Reply reply);
    void rebind(const PciAddress& address, const std::string& driver, const RequestOptions& options, Reply reply);
    void resize(const PciAddress& address, unsigned bar, uint64_t size, const RequestOptions& options, Reply reply);
    void reload(Reply reply);

    // At start: an operation the journal shows unfinished is rolled back before any other.
    void recover();
    // New calls fail with ShuttingDown, queued ones at once; a running one is rolled back.
    void shutdown(std::function<void()> whenIdle);

    void onUdevEvent(const UdevEvent& event) { executor_.onUdevEvent(event); }

    std::vector<std::string> preparedVms() const;
    const std::string& operation() const { return operationName_; }

private:
    struct Machine {
        std::map<PciAddress, PciDevice> devices;
        bool vfioLoaded = false;
    };
    // What an operation amounts to on the machine as it is at its turn.
    struct Draft {
        Transition transition;
        std::string displayManagerUnit;  // stopped before and started after, if it is active
        std::vector<std::string> stopUnits;  // the profile's stop_units: stopped if active, left stopped
        bool restartDisplayManager = true;   // false: "stop"
        DeviceSettings before;
        // What the state records once the steps are done (the transition as it ran).
        std::function<void(DaemonState&, const Transition&)> commit;
        Outcome outcome;
    };
    struct Request {
        std::string name;
        RequestOptions options;
        std::function<Draft(const Machine&)> resolve;  // throws Failure
        Reply reply;
    };

    void submit(Request request);
    void start(const std::shared_ptr<Request>& request);
    // Asks systemd whether units[next...] run; the running ones go into the draft's
    // transition, then `plan` runs.
    void askActiveStates(const std::shared_ptr<Request>& request, const std::shared_ptr<Draft>& draft,
                         std::vector<std::string> units, size_t next, const std::function<void(Draft)>& plan);
    void planAndRun(const std::shared_ptr<Request>& request, Draft draft);
    void execute(const std::shared_ptr<Request>& request, Draft draft, std::vector<Step> steps);
    void rollBack(const std::shared_ptr<Request>& request, const Failure& failure, std::vector<std::string> lines);
    void runRollback(const std::shared_ptr<Request>& request, const Failure& failure, std::vector<std::string> lines,
                     std::vector<Step> steps, std::optional<Failure> earlierFailure);
    void endRollback(const std::shared_ptr<Request>& request, const Failure& failure, std::vector<std::string> lines,
                     const std::optional<Failure>& rollbackFailure);
    void finish(const std::shared_ptr<Request>& request, std::optional<Failure> failure, Outcome outcome);
    void startNextLater();
    Machine readMachine() const;
    void save();
    std::string describeDevices(const DeviceSettings& settings) const;
    // The VM's profile: from the configuration file, else from the domain XML's metadata.
    std::optional<VmProfile> profileFor(const std::string& vm, const RequestOptions& options) const;
    static void refuseForKeep(const std::string& vm, const PciDevice& device);
    Draft resolvePrepare(const std::string& vm, const RequestOptions& options, const Machine& machine) const;
    Draft resolveRelease(const std::string& vm, const Machine& machine) const;
    // DeviceBusy while a write to the device has not returned.
    void refuseWedged(const PciAddress& address) const;

    sd_event* event_;
    const Sysfs& sysfs_;
    SysfsWriter& writer_;
    UnitControl& units_;
    Journal journal_;
    const Config& config_;
    Listener& listener_;
    Reloader reloader_;
    Executor executor_;
    DaemonState state_;
    std::deque<std::shared_ptr<Request>> queue_;
    std::shared_ptr<Request> current_;
    std::chrono::steady_clock::time_point started_{};
    std::string operationName_;
    bool shuttingDown_ = false;
    std::function<void()> whenIdle_;
    sd_event_source* next_ = nullptr;
};

} // namespace gpuswap
