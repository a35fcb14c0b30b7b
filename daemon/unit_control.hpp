// SPDX-License-Identifier: GPL-2.0-or-later
#pragma once

#include <sdbus-c++/IConnection.h>
#include <sdbus-c++/IProxy.h>

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

namespace gpuswap {

// systemd's Manager, asynchronously: start and stop units and wait for their jobs, read
// a unit's ActiveState and the system's state. Callbacks run on the event loop.
class UnitControl {
public:
    // nullopt on success, else what went wrong, for the error message.
    using Done = std::function<void(std::optional<std::string> error)>;
    using StateDone = std::function<void(std::optional<std::string> error, std::string state)>;
    // true or false when systemd answered, nullopt when it did not.
    using KnownDone = std::function<void(std::optional<bool> known)>;

    explicit UnitControl(sdbus::IConnection& connection);

    // StartUnit/StopUnit, then JobRemoved for that job (matched by its object path:
    // systemd names the real unit there, gdm.service for display-manager.service), then
    // ActiveState must be the state a finished job leaves.
    void start(const std::string& unit, const Done& done) { runJob("StartUnit", unit, "active", done); }
    void stop(const std::string& unit, const Done& done) { runJob("StopUnit", unit, "inactive", done); }
    // A oneshot unit without RemainAfterExit (modprobe@.service) is inactive again once
    // its job is done: only the job's result counts.
    void runOnce(const std::string& unit, const Done& done) { runJob("StartUnit", unit, {}, done); }

    void activeState(const std::string& unit, const StateDone& done);
    // Whether systemd has the unit (loaded or loadable, not "not-found").
    void unitKnown(const std::string& unit, const KnownDone& done);
    // "running", "stopping" (shutting down), ...
    void systemState(const StateDone& done);

private:
    // ListUnitsByNames for one unit: its ActiveState, nullopt when systemd has no such unit.
    using UnitDone = std::function<void(const sdbus::Error* error, std::optional<std::string> activeState)>;
    void listUnit(const std::string& unit, const UnitDone& done);
    void runJob(const std::string& method, const std::string& unit, const std::string& expectedState, const Done& done);
    void jobRemoved(const std::string& job, const std::string& result);

    std::unique_ptr<sdbus::IProxy> manager_;
    std::unique_ptr<sdbus::IProxy> bus_;
    // systemd's current unique name: any peer can send a signal to gpuswapd, so JobRemoved
    // counts only from there. It changes when systemd re-executes.
    std::string systemdOwner_;
    sdbus::Slot ownerWatch_;
    struct Waiting {
        std::string unit;
        std::string expectedState;
        Done done;
    };
    std::map<std::string, Waiting> waiting_;
    // JobRemoved can be dispatched before the reply that names the job.
    std::map<std::string, std::string> finishedEarly_;
};

} // namespace gpuswap
