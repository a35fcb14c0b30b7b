// SPDX-License-Identifier: GPL-2.0-or-later
#pragma once

#include "errors.hpp"
#include "log.hpp"
#include "sdbus_compat.hpp"

#include <sdbus-c++/Error.h>

#include <exception>
#include <string>

namespace gpuswap {

inline sdbus::Error toBusError(const Failure& failure)
{
    return bus::error(errorName(failure.code()), failure.what());
}

// sdbus-c++ 1.2 turns only sdbus::Error into a D-Bus error reply; anything else
// would unwind through libsystemd and end the daemon. Every handler runs in here.
template <typename Body>
auto guarded(const char* handler, Body&& body) -> decltype(body())
{
    try {
        return body();
    } catch (const sdbus::Error&) {
        throw;
    } catch (const Failure& failure) {
        throw toBusError(failure);
    } catch (const std::exception& e) {
        log::error(std::string("bug in ") + handler + ": " + e.what(), {{"HANDLER", handler}});
        throw bus::error(errorName(ErrorCode::Internal), std::string("internal error in ") + handler + ": " +
                                                               e.what() + " (please report this bug)");
    } catch (...) {
        log::error(std::string("bug in ") + handler + ": unknown exception", {{"HANDLER", handler}});
        throw bus::error(errorName(ErrorCode::Internal),
                           std::string("internal error in ") + handler + " (please report this bug)");
    }
}

// Replies and signals leave from sd-event callbacks and destructors, where an exception
// (sdbus-c++ throws on text D-Bus refuses) would end the daemon: it is logged instead.
template <typename Send>
void sendSafely(const std::string& what, Send&& send) noexcept
{
    try {
        send();
    } catch (const std::exception& e) {
        log::error("could not send " + what + ": " + e.what());
    }
}

} // namespace gpuswap
