// SPDX-License-Identifier: GPL-2.0-or-later
#pragma once

#include <stdexcept>
#include <string>

namespace gpuswap {

// The D-Bus error names of DESIGN.md, org.gpuswap1.Error.<Name>.
enum class ErrorCode {
    InvalidArgument,
    NoSuchProfile,
    NoSuchDevice,
    NoSuchDriver,
    UnsupportedSize,
    NotViable,
    DeviceBusy,
    Timeout,
    KernelRefused,
    DisplayManagerFailed,
    Busy,
    BadConfig,
    ShuttingDown,
    Internal,
    Inconsistent,
    // Authorization: org.freedesktop.DBus.Error.*
    AccessDenied,
    InteractiveAuthorizationRequired,
};

std::string errorName(ErrorCode code);

// A failure the caller is told about, by name. The core throws it; the bus layer
// turns it into the D-Bus error of the same name. The public message goes to every bus
// client (OperationFinished): it leaves out what only the caller and the journal may
// see, such as which processes of which users hold a device.
class Failure : public std::runtime_error {
public:
    Failure(ErrorCode code, const std::string& message) : Failure(code, message, message) {}
    Failure(ErrorCode code, const std::string& message, std::string publicMessage)
        : std::runtime_error(message), code_(code), public_(std::move(publicMessage))
    {
    }
    ErrorCode code() const { return code_; }
    const std::string& publicMessage() const { return public_; }
    // The same failure, with text added to both messages.
    Failure extended(const std::string& suffix) const { return {code_, what() + suffix, public_ + suffix}; }

private:
    ErrorCode code_;
    std::string public_;
};

} // namespace gpuswap
