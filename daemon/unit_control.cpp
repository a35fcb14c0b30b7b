#include "unit_control.hpp"

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
    : manager_(sdbus::createProxy(connection, kSystemd, kManagerPath)),
      bus_(sdbus::createProxy(connection, "org.freedesktop.DBus", "/org/freedesktop/DBus"))
{
    manager_->uponSignal("JobRemoved")
        .onInterface(kManagerInterface)
        .call([this](uint32_t, const sdbus::ObjectPath& job, const std::string&, const std::string& result) {
            const std::string sender = manager_->getCurrentlyProcessedMessage()->getSender();
            if (sender != systemdOwner_) {
                log::warning("ignored a JobRemoved signal from " + escapeText(sender) + ", which is not systemd (" +
                             systemdOwner_ + ")");
                return;
            }
            jobRemoved(job, result);
        });
    manager_->finishRegistration();
    bus_->finishRegistration();
    ownerWatch_ = connection.addMatch(
        "type='signal',sender='org.freedesktop.DBus',interface='org.freedesktop.DBus',member='NameOwnerChanged',"
        "arg0='org.freedesktop.systemd1'",
        [this](sdbus::Message& message) {
            std::string name;
            std::string oldOwner;
            std::string newOwner;
            message >> name >> oldOwner >> newOwner;
            systemdOwner_ = newOwner;
        });
    bus_->callMethodAsync("GetNameOwner")
        .onInterface("org.freedesktop.DBus")
        .withArguments(std::string(kSystemd))
        .uponReplyInvoke([this](const sdbus::Error* error, const std::string& owner) {
            if (error != nullptr)
                log::warning("systemd is not on the bus (" + error->getMessage() + "); display-manager steps will fail");
            else if (systemdOwner_.empty())
                systemdOwner_ = owner;
        });
    // Without Subscribe() systemd sends JobRemoved only to subscribers it already has.
    manager_->callMethodAsync("Subscribe").onInterface(kManagerInterface).uponReplyInvoke([](const sdbus::Error* error) {
        if (error != nullptr)
            log::warning("cannot subscribe to systemd's job signals: " + error->getMessage() +
                         "; display-manager steps will fail");
    });
}

void UnitControl::runJob(const std::string& method, const std::string& unit, const std::string& expectedState, const Done& done)
{
    manager_->callMethodAsync(method)
        .onInterface(kManagerInterface)
        .withTimeout(kCallTimeout)
        .withArguments(unit, std::string("replace"))
        .uponReplyInvoke([this, method, unit, expectedState, done](const sdbus::Error* error, const sdbus::ObjectPath& job) {
            if (error != nullptr) {
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
    manager_->callMethodAsync("ListUnitsByNames")
        .onInterface(kManagerInterface)
        .withTimeout(kCallTimeout)
        .withArguments(std::vector<std::string>{unit})
        .uponReplyInvoke([done](const sdbus::Error* error, const std::vector<UnitRow>& rows) {
            if (error != nullptr || rows.empty() || std::get<2>(rows.front()) == "not-found")
                done(error, std::nullopt);
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
    manager_->callMethodAsync("Get")
        .onInterface("org.freedesktop.DBus.Properties")
        .withTimeout(kCallTimeout)
        .withArguments(std::string(kManagerInterface), std::string("SystemState"))
        .uponReplyInvoke([done](const sdbus::Error* error, const sdbus::Variant& value) {
            if (error != nullptr)
                done("cannot read systemd's SystemState: " + error->getMessage(), {});
            else
                done(std::nullopt, value.get<std::string>());
        });
}

} // namespace gpuswap
