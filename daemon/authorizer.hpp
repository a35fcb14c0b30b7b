// SPDX-License-Identifier: GPL-2.0-or-later
#pragma once

#include "errors.hpp"

#include <sdbus-c++/IConnection.h>
#include <sdbus-c++/IProxy.h>

#include <sys/types.h>

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace gpuswap {

enum class Action { ManageVm, RebindDevice, ResizeBar, Reload };

std::string actionId(Action action);  // "org.gpuswap1.manage-vm", ...

struct Caller {
    std::string busName;           // unique name of the sender
    bool allowInteraction = false;  // the message's allow-interactive-authorization flag or the option
};

// Decides whether a caller may run a state-changing method: uid 0 may; everyone else
// is asked of polkit (subject system-bus-name), asynchronously; deny by default.
// The uid comes from the bus (GetConnectionUnixUser), never from /proc.
class Authorizer {
public:
    // nullopt: allowed. Else AccessDenied or InteractiveAuthorizationRequired.
    using Done = std::function<void(std::optional<Failure> denied)>;
    using Identified = std::function<void(std::optional<Failure> unknown, uid_t uid)>;

    explicit Authorizer(sdbus::IConnection& connection);
    ~Authorizer();
    Authorizer(const Authorizer&) = delete;
    Authorizer& operator=(const Authorizer&) = delete;

    // The caller's uid, from the bus.
    void identify(const std::string& busName, const Identified& done);
    // rootOnly: a request only uid 0 may make (PrepareVM's domain-xml), whatever polkit says.
    // A polkit check is dropped (and cancelled at polkit) when the caller leaves the bus.
    void authorize(const Caller& caller, uid_t uid, Action action, bool rootOnly, const Done& done);
    // Checks polkit is working on now.
    size_t pendingChecks() const { return pending_.size(); }

private:
    struct Pending;
    void askPolkit(const Caller& caller, Action action, const Done& done);
    void callerLeft(std::string busName);

    sdbus::IConnection& connection_;
    std::unique_ptr<sdbus::IProxy> bus_;
    std::unique_ptr<sdbus::IProxy> polkit_;
    std::map<uint64_t, std::unique_ptr<Pending>> pending_;
    std::vector<std::unique_ptr<Pending>> retired_;
    uint64_t nextCheck_ = 1;
};

} // namespace gpuswap
