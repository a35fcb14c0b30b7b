#pragma once

#include "errors.hpp"

#include <sdbus-c++/IConnection.h>
#include <sdbus-c++/IProxy.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>

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

    explicit Authorizer(sdbus::IConnection& connection);

    // rootOnly: a request only uid 0 may make (PrepareVM's domain-xml), whatever polkit says.
    void check(const Caller& caller, Action action, bool rootOnly, const Done& done);

private:
    void askPolkit(const Caller& caller, Action action, const Done& done);

    std::unique_ptr<sdbus::IProxy> bus_;
    std::unique_ptr<sdbus::IProxy> polkit_;
};

} // namespace gpuswap
