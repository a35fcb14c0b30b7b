// SPDX-License-Identifier: GPL-2.0-or-later
#pragma once

// The one place where sdbus-c++ 1.2 (Debian 12) and 2.x (Debian 13, Fedora, Arch) differ
// for gpuswap. Code is written the 2.x way with these names; on 1.2 they are what 1.2
// takes. SDBUS_CPP_MAJOR comes from meson (the dependency's version).
#include <sdbus-c++/sdbus-c++.h>
#include <systemd/sd-bus.h>

#include <optional>
#include <string>
#include <utility>
#include <vector>

#ifndef SDBUS_CPP_MAJOR
#error "meson defines SDBUS_CPP_MAJOR from sdbus-c++'s version"
#endif

namespace gpuswap::bus {

#if SDBUS_CPP_MAJOR >= 2
// Explicit strong types for names (Types.h, Error.h): a string literal does not convert.
using ServiceName = sdbus::ServiceName;
using InterfaceName = sdbus::InterfaceName;
using MethodName = sdbus::MethodName;
using SignalName = sdbus::SignalName;
using PropertyName = sdbus::PropertyName;
using ErrorName = sdbus::Error::Name;
// Async replies pass std::optional<Error> first (TypeTraits.h).
using AsyncError = std::optional<sdbus::Error>;
inline const sdbus::Error* errorOf(const AsyncError& error) { return error ? &*error : nullptr; }
// getCurrentlyProcessedMessage() gives a Message by value (IObject.h, IProxy.h).
template <typename ObjectOrProxy>
sdbus::Message currentMessage(ObjectOrProxy& source)
{
    return source.getCurrentlyProcessedMessage();
}
// Proxies subscribe at once; finishRegistration() is gone (IProxy.h).
inline void finishRegistration(sdbus::IProxy&) {}
#else
using ServiceName = std::string;
using InterfaceName = std::string;
using MethodName = std::string;
using SignalName = std::string;
using PropertyName = std::string;
using ErrorName = std::string;
using AsyncError = const sdbus::Error*;
inline const sdbus::Error* errorOf(AsyncError error) { return error; }
// 1.2 hands out a pointer, and its Message cannot be copied.
template <typename ObjectOrProxy>
const sdbus::Message& currentMessage(ObjectOrProxy& source)
{
    return *source.getCurrentlyProcessedMessage();
}
inline void finishRegistration(sdbus::IProxy& proxy) { proxy.finishRegistration(); }
#endif

inline sdbus::Error error(const std::string& name, const std::string& message)
{
    return sdbus::Error(ErrorName{name}, message);
}

inline std::unique_ptr<sdbus::IProxy> proxy(sdbus::IConnection& connection, const std::string& service, const std::string& path)
{
    return sdbus::createProxy(connection, ServiceName{service}, sdbus::ObjectPath{path});
}

} // namespace gpuswap::bus

namespace gpuswap::bus {

inline std::vector<PropertyName> propertyNames(const std::vector<std::string>& names)
{
    return {names.begin(), names.end()};
}

inline std::vector<InterfaceName> interfaceNames(const std::vector<std::string>& names)
{
    return {names.begin(), names.end()};
}

// A match rule whose callback runs until the returned slot goes (2.x: addMatch returns a
// slot only when asked to, IConnection.h).
template <typename Callback>
sdbus::Slot addMatch(sdbus::IConnection& connection, const std::string& rule, Callback&& callback)
{
#if SDBUS_CPP_MAJOR >= 2
    return connection.addMatch(rule, std::forward<Callback>(callback), sdbus::return_slot);
#else
    return connection.addMatch(rule, std::forward<Callback>(callback));
#endif
}

// An asynchronous call of a prepared message; `handler(reply, error)` gets a null error on
// success (1.2: IProxy::callMethod with a callback; 2.x: callMethodAsync).
template <typename Handler, typename Duration>
sdbus::PendingAsyncCall callAsync(sdbus::IProxy& proxy, const sdbus::MethodCall& call, Handler handler, Duration timeout)
{
#if SDBUS_CPP_MAJOR >= 2
    return proxy.callMethodAsync(
        call, [handler](sdbus::MethodReply reply, std::optional<sdbus::Error> error) { handler(reply, errorOf(error)); },
        timeout);
#else
    return proxy.callMethod(
        call, [handler](sdbus::MethodReply& reply, const sdbus::Error* error) { handler(reply, error); }, timeout);
#endif
}

// sdbus-c++ (1.2 and 2.x) hides a message's sd_bus_message*, which the
// allow-interactive-authorization flag needs; a pointer to the protected member formed in
// a derived class reaches it.
struct RawMessage : sdbus::Message {
    static sd_bus_message* of(const sdbus::Message& message)
    {
        return static_cast<sd_bus_message*>(message.*(&RawMessage::msg_));
    }
};

} // namespace gpuswap::bus
