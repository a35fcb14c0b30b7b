// SPDX-License-Identifier: GPL-2.0-or-later
#pragma once

#include "sdbus_compat.hpp"

#include <sdbus-c++/sdbus-c++.h>

#include <memory>
#include <string>

// What gpuswapctl and gpuswap-hook share: reaching gpuswapd.
namespace gpuswap::client {

inline constexpr const char* kBusName = "org.gpuswap1";
inline constexpr const char* kManagerPath = "/org/gpuswap1";
inline constexpr const char* kManagerInterface = "org.gpuswap1.Manager";
inline constexpr const char* kDeviceInterface = "org.gpuswap1.Device";

inline std::unique_ptr<sdbus::IProxy> managerProxy(sdbus::IConnection& connection)
{
    return bus::proxy(connection, kBusName, kManagerPath);
}

// gpuswapd is not there to answer: no bus, no owner of the name, or no reply.
inline bool isUnreachable(const sdbus::Error& error)
{
    const std::string& name = error.getName();
    return name.starts_with("System.Error.") || name == "org.freedesktop.DBus.Error.ServiceUnknown" ||
           name == "org.freedesktop.DBus.Error.NameHasNoOwner" || name == "org.freedesktop.DBus.Error.NoReply" ||
           name == "org.freedesktop.DBus.Error.Disconnected" || name == "org.freedesktop.DBus.Error.NoServer" ||
           name == "org.freedesktop.DBus.Error.FileNotFound";
}

} // namespace gpuswap::client
