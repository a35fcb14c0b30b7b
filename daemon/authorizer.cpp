#include "authorizer.hpp"

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

Authorizer::Authorizer(sdbus::IConnection& connection)
    : bus_(sdbus::createProxy(connection, "org.freedesktop.DBus", "/org/freedesktop/DBus")),
      polkit_(sdbus::createProxy(connection, "org.freedesktop.PolicyKit1", "/org/freedesktop/PolicyKit1/Authority"))
{
    bus_->finishRegistration();
    polkit_->finishRegistration();
}

void Authorizer::check(const Caller& caller, Action action, bool rootOnly, const Done& done)
{
    bus_->callMethodAsync("GetConnectionUnixUser")
        .onInterface("org.freedesktop.DBus")
        .withArguments(caller.busName)
        .uponReplyInvoke([this, caller, action, rootOnly, done](const sdbus::Error* error, uint32_t uid) {
            if (error != nullptr) {
                done(Failure(ErrorCode::AccessDenied, "cannot tell who is calling: " + error->getMessage()));
                return;
            }
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
        });
}

void Authorizer::askPolkit(const Caller& caller, Action action, const Done& done)
{
    const std::string id = actionId(action);
    const Subject subject{"system-bus-name", {{"name", sdbus::Variant(caller.busName)}}};
    polkit_->callMethodAsync("CheckAuthorization")
        .onInterface("org.freedesktop.PolicyKit1.Authority")
        .withTimeout(kPolkitTimeout)
        .withArguments(subject, id, std::map<std::string, std::string>{},
                       caller.allowInteraction ? kAllowUserInteraction : 0U, std::string())
        .uponReplyInvoke([id, caller, done](const sdbus::Error* error, const AuthorizationResult& result) {
            if (error != nullptr) {
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
}

} // namespace gpuswap
