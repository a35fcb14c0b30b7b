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
// turns it into the D-Bus error of the same name.
class Failure : public std::runtime_error {
public:
    Failure(ErrorCode code, const std::string& message) : std::runtime_error(message), code_(code) {}
    ErrorCode code() const { return code_; }

private:
    ErrorCode code_;
};

} // namespace gpuswap
