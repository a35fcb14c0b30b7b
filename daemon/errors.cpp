// SPDX-License-Identifier: GPL-2.0-or-later
#include "errors.hpp"

namespace gpuswap {

std::string errorName(ErrorCode code)
{
    const char* name = "Internal";
    switch (code) {
    case ErrorCode::InvalidArgument: name = "InvalidArgument"; break;
    case ErrorCode::NoSuchProfile: name = "NoSuchProfile"; break;
    case ErrorCode::NoSuchDevice: name = "NoSuchDevice"; break;
    case ErrorCode::NoSuchDriver: name = "NoSuchDriver"; break;
    case ErrorCode::UnsupportedSize: name = "UnsupportedSize"; break;
    case ErrorCode::NotViable: name = "NotViable"; break;
    case ErrorCode::DeviceBusy: name = "DeviceBusy"; break;
    case ErrorCode::Timeout: name = "Timeout"; break;
    case ErrorCode::KernelRefused: name = "KernelRefused"; break;
    case ErrorCode::DisplayManagerFailed: name = "DisplayManagerFailed"; break;
    case ErrorCode::Busy: name = "Busy"; break;
    case ErrorCode::BadConfig: name = "BadConfig"; break;
    case ErrorCode::ShuttingDown: name = "ShuttingDown"; break;
    case ErrorCode::Internal: name = "Internal"; break;
    case ErrorCode::Inconsistent: name = "Inconsistent"; break;
    case ErrorCode::AccessDenied: return "org.freedesktop.DBus.Error.AccessDenied";
    case ErrorCode::InteractiveAuthorizationRequired:
        return "org.freedesktop.DBus.Error.InteractiveAuthorizationRequired";
    }
    return std::string("org.gpuswap1.Error.") + name;
}

} // namespace gpuswap
