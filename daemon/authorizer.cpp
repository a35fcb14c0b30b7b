// SPDX-License-Identifier: GPL-2.0-or-later
#include "authorizer.hpp"
#include "sdbus_compat.hpp"

#include "log.hpp"

#include <sdbus-c++/sdbus-c++.h>

#include <chrono>
#include <map>

namespace gpuswap {

namespace {

// polkit may show an agent dialog; the caller's own timeout is what bounds it.
constexpr auto kPolkitTimeout = std::chrono::minutes(5);
constexpr uint32_t kAllowUserInteraction = 1;

using Subject = sdbus::Struct<std::string, std::map<std::string, sdbus::Variant>>;
using AuthorizationResult = sdbus::Struct<bool, bool, std::map<std::string, std::string>>;

} // namespace

std::string actionId(Action action)
{
    switch (action) {
    case Action::ManageVm: return "org.gpuswap1.manage-vm";
    case Action::RebindDevice: return "org.gpuswap1.rebind-device";
    case Action::ResizeBar: return "org.gpuswap1.resize-bar";
    case Action::Reload: return "org.gpuswap1.reload";
    }
    return "org.gpuswap1.manage-vm";
}

struct Authorizer::Pending {
    std::string busName;
    std::string cancellationId;
    sdbus::PendingAsyncCall call;
    sdbus::Slot callerWatch;
    Done done;
};

Authorizer::Authorizer(sdbus::IConnection& connection)
    : connection_(connection), bus_(bus::proxy(connection, "org.freedesktop.DBus", "/org/freedesktop/DBus")),
      polkit_(bus::proxy(connection, "org.freedesktop.PolicyKit1", "/org/freedesktop/PolicyKit1/Authority"))
{
    bus::finishRegistration(*bus_);
    bus::finishRegistration(*polkit_);
}

Authorizer::~Authorizer()
{
    for (auto& [id, pending] : pending_)
        pending->call.cancel();
}

void Authorizer::identify(const std::string& busName, const Identified& done)
{
    bus_->callMethodAsync(bus::MethodName{"GetConnectionUnixUser"})
        .onInterface(bus::InterfaceName{"org.freedesktop.DBus"})
        .withArguments(busName)
        .uponReplyInvoke([done](bus::AsyncError error, uint32_t uid) {
            if (bus::errorOf(error) != nullptr)
                done(Failure(ErrorCode::AccessDenied, "cannot tell who is calling: " + error->getMessage()), 0);
            else
                done(std::nullopt, static_cast<uid_t>(uid));
        });
}

void Authorizer::authorize(const Caller& caller, uid_t uid, Action action, bool rootOnly, const Done& done)
{
    if (uid == 0) {
        done(std::nullopt);
        return;
    }
    if (rootOnly) {
        done(Failure(ErrorCode::AccessDenied,
                     "domain-xml is accepted from root only (the libvirt hook): it would let the caller "
                     "hand over any device it names"));
        return;
    }
    askPolkit(caller, action, done);
}

void Authorizer::askPolkit(const Caller& caller, Action action, const Done& done)
{
    const std::string id = actionId(action);
    const uint64_t check = nextCheck_++;
    retired_.clear();
    auto pending = std::make_unique<Pending>();
    pending->busName = caller.busName;
    pending->cancellationId = "gpuswapd-" + std::to_string(check);
    pending->done = done;
    // Only this caller's departure: a match on every NameOwnerChanged would wake the
    // daemon for each client of the bus.
    pending->callerWatch = bus::addMatch(connection_,
        "type='signal',sender='org.freedesktop.DBus',interface='org.freedesktop.DBus',member='NameOwnerChanged',"
        "arg0='" + caller.busName + "',arg2=''",
        [this, name = caller.busName](auto&&) { callerLeft(name); });
    const Subject subject{"system-bus-name", {{"name", sdbus::Variant(caller.busName)}}};
    log::debug("asking polkit whether " + caller.busName + " may " + id + " (check " + pending->cancellationId + ")");
    pending->call =
        polkit_->callMethodAsync(bus::MethodName{"CheckAuthorization"})
            .onInterface(bus::InterfaceName{"org.freedesktop.PolicyKit1.Authority"})
            .withTimeout(kPolkitTimeout)
            .withArguments(subject, id, std::map<std::string, std::string>{},
                           caller.allowInteraction ? kAllowUserInteraction : 0U, pending->cancellationId)
            .uponReplyInvoke([this, check, id, caller](bus::AsyncError error, const AuthorizationResult& result) {
                auto node = pending_.extract(check);
                if (!node)
                    return;
                const Done done = std::move(node.mapped()->done);
                if (bus::errorOf(error) != nullptr) {
                    log::warning("polkit could not decide on " + id + " for " + caller.busName + ": " + error->getMessage());
                    done(Failure(ErrorCode::AccessDenied, "not authorized for " + id + ": polkit failed: " + error->getMessage()));
                    return;
                }
                const bool authorized = std::get<0>(result);
                const bool challenge = std::get<1>(result);
                if (authorized)
                    done(std::nullopt);
                else if (challenge && !caller.allowInteraction)
                    done(Failure(ErrorCode::InteractiveAuthorizationRequired,
                                 "authentication is required for " + id + ": call again allowing interaction "
                                 "(gpuswapctl asks for the password on a terminal)"));
                else
                    done(Failure(ErrorCode::AccessDenied, "not authorized for " + id));
            });
    pending_.emplace(check, std::move(pending));
}

// A copy on purpose: the string passed in lives in a Pending that this call retires.
void Authorizer::callerLeft(std::string busName)  // NOLINT(performance-unnecessary-value-param)
{
    // Runs inside the match callback that a Pending owns: those stay alive (retired)
    // until the next check, never destroyed under the running callback.
    retired_.clear();
    for (auto it = pending_.begin(); it != pending_.end();) {
        if (it->second->busName != busName) {
            ++it;
            continue;
        }
        Pending& pending = *retired_.emplace_back(std::move(it->second));
        it = pending_.erase(it);
        pending.call.cancel();
        log::info("dropped the authorization check of " + busName + ", which left the bus");
        polkit_->callMethodAsync(bus::MethodName{"CancelCheckAuthorization"})
            .onInterface(bus::InterfaceName{"org.freedesktop.PolicyKit1.Authority"})
            .withArguments(pending.cancellationId)
            .uponReplyInvoke([](bus::AsyncError) {});
        pending.done(Failure(ErrorCode::AccessDenied, "the caller left the bus before polkit decided"));
    }
}

} // namespace gpuswap
