// SPDX-License-Identifier: GPL-2.0-or-later
#include "unit_control.hpp"
#include "sdbus_compat.hpp"

#include "log.hpp"
#include "text.hpp"

#include <sdbus-c++/sdbus-c++.h>

#include <chrono>
#include <tuple>

namespace gpuswap {

namespace {

constexpr const char* kSystemd = "org.freedesktop.systemd1";
constexpr const char* kManagerPath = "/org/freedesktop/systemd1";
constexpr const char* kManagerInterface = "org.freedesktop.systemd1.Manager";
// The caller's own deadlines (timeouts_ms) end a wait; this only bounds a lost reply.
constexpr auto kCallTimeout = std::chrono::minutes(5);

using UnitRow = sdbus::Struct<std::string, std::string, std::string, std::string, std::string, std::string,
                              sdbus::ObjectPath, uint32_t, std::string, sdbus::ObjectPath>;

} // namespace

UnitControl::UnitControl(sdbus::IConnection& connection)
    : manager_(bus::proxy(connection, kSystemd, kManagerPath)),
      bus_(bus::proxy(connection, "org.freedesktop.DBus", "/org/freedesktop/DBus"))
{
    manager_->uponSignal(bus::SignalName{"JobRemoved"})
        .onInterface(bus::InterfaceName{kManagerInterface})
        .call([this](uint32_t, const sdbus::ObjectPath& job, const std::string&, const std::string& result) {
            const std::string sender = bus::currentMessage(*manager_).getSender();
            if (sender != systemdOwner_) {
                log::warning("ignored a JobRemoved signal from " + escapeText(sender) + ", which is not systemd (" +
                             systemdOwner_ + ")");
                return;
            }
            jobRemoved(job, result);
        });
    bus::finishRegistration(*manager_);
    bus::finishRegistration(*bus_);
    ownerWatch_ = bus::addMatch(connection,
        "type='signal',sender='org.freedesktop.DBus',interface='org.freedesktop.DBus',member='NameOwnerChanged',"
        "arg0='org.freedesktop.systemd1'",
        [this](auto&& message) {
            std::string name;
            std::string oldOwner;
            std::string newOwner;
            message >> name >> oldOwner >> newOwner;
            systemdOwner_ = newOwner;
        });
    bus_->callMethodAsync(bus::MethodName{"GetNameOwner"})
        .onInterface(bus::InterfaceName{"org.freedesktop.DBus"})
        .withArguments(std::string(kSystemd))
        .uponReplyInvoke([this](bus::AsyncError error, const std::string& owner) {
            if (bus::errorOf(error) != nullptr)
                log::warning("systemd is not on the bus (" + error->getMessage() + "); display-manager steps will fail");
            else if (systemdOwner_.empty())
                systemdOwner_ = owner;
        });
    // Without Subscribe() systemd sends JobRemoved only to subscribers it already has.
    manager_->callMethodAsync(bus::MethodName{"Subscribe"}).onInterface(bus::InterfaceName{kManagerInterface}).uponReplyInvoke([](bus::AsyncError error) {
        if (bus::errorOf(error) != nullptr)
            log::warning("cannot subscribe to systemd's job signals: " + error->getMessage() +
                         "; display-manager steps will fail");
    });
}

void UnitControl::runJob(const std::string& method, const std::string& unit, const std::string& expectedState, const Done& done)
{
    manager_->callMethodAsync(bus::MethodName{method})
        .onInterface(bus::InterfaceName{kManagerInterface})
        .withTimeout(kCallTimeout)
        .withArguments(unit, std::string("replace"))
        .uponReplyInvoke([this, method, unit, expectedState, done](bus::AsyncError error, const sdbus::ObjectPath& job) {
            if (bus::errorOf(error) != nullptr) {
                done(method + " " + unit + ": " + error->getMessage());
                return;
            }
            waiting_[job] = {unit, expectedState, done};
            if (auto early = finishedEarly_.extract(job))
                jobRemoved(job, early.mapped());
        });
}

void UnitControl::jobRemoved(const std::string& job, const std::string& result)
{
    auto node = waiting_.extract(job);
    if (!node) {
        // Not ours (yet): kept briefly in case our StartUnit/StopUnit reply is still queued.
        if (finishedEarly_.size() > 64)
            finishedEarly_.clear();
        finishedEarly_[job] = result;
        return;
    }
    Waiting waiting = std::move(node.mapped());
    if (result != "done") {
        waiting.done("the job for " + waiting.unit + " ended with \"" + result + "\"");
        return;
    }
    if (waiting.expectedState.empty()) {
        waiting.done(std::nullopt);
        return;
    }
    activeState(waiting.unit, [waiting](const std::optional<std::string>& error, const std::string& state) {
        if (error)
            waiting.done(error);
        else if (state != waiting.expectedState)
            waiting.done(waiting.unit + " is " + state + " after its job, not " + waiting.expectedState);
        else
            waiting.done(std::nullopt);
    });
}

void UnitControl::listUnit(const std::string& unit, const UnitDone& done)
{
    manager_->callMethodAsync(bus::MethodName{"ListUnitsByNames"})
        .onInterface(bus::InterfaceName{kManagerInterface})
        .withTimeout(kCallTimeout)
        .withArguments(std::vector<std::string>{unit})
        .uponReplyInvoke([done](bus::AsyncError error, const std::vector<UnitRow>& rows) {
            if (bus::errorOf(error) != nullptr || rows.empty() || std::get<2>(rows.front()) == "not-found")
                done(bus::errorOf(error), std::nullopt);
            else
                done(nullptr, std::get<3>(rows.front()));
        });
}

void UnitControl::activeState(const std::string& unit, const StateDone& done)
{
    listUnit(unit, [unit, done](const sdbus::Error* error, const std::optional<std::string>& state) {
        if (error != nullptr)
            done("cannot read the state of " + unit + ": " + error->getMessage(), {});
        else if (!state)
            done("systemd has no unit " + unit, {});
        else
            done(std::nullopt, *state);
    });
}

void UnitControl::unitKnown(const std::string& unit, const KnownDone& done)
{
    listUnit(unit, [done](const sdbus::Error* error, const std::optional<std::string>& state) {
        done(error != nullptr ? std::nullopt : std::optional<bool>(state.has_value()));
    });
}

void UnitControl::systemState(const StateDone& done)
{
    manager_->callMethodAsync(bus::MethodName{"Get"})
        .onInterface(bus::InterfaceName{"org.freedesktop.DBus.Properties"})
        .withTimeout(kCallTimeout)
        .withArguments(std::string(kManagerInterface), std::string("SystemState"))
        .uponReplyInvoke([done](bus::AsyncError error, const sdbus::Variant& value) {
            if (bus::errorOf(error) != nullptr)
                done("cannot read systemd's SystemState: " + error->getMessage(), {});
            else
                done(std::nullopt, value.get<std::string>());
        });
}

} // namespace gpuswap
