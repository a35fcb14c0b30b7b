// SPDX-License-Identifier: GPL-2.0-or-later
#include "bus_guard.hpp"
#include "sdbus_compat.hpp"

#include <gtest/gtest.h>

#include <stdexcept>

using namespace gpuswap;

TEST(BusGuard, PassesResultsThrough)
{
    EXPECT_EQ(guarded("Test", [] { return 42; }), 42);
}

TEST(BusGuard, FailuresBecomeTheirDBusError)
{
    try {
        guarded("Test", []() -> int { throw Failure(ErrorCode::NoSuchProfile, "no profile for VM \"x\""); });
        FAIL() << "no exception";
    } catch (const sdbus::Error& e) {
        EXPECT_EQ(e.getName(), "org.gpuswap1.Error.NoSuchProfile");
        EXPECT_EQ(e.getMessage(), "no profile for VM \"x\"");
    }
}

TEST(BusGuard, AnyOtherExceptionBecomesInternalNamingTheHandler)
{
    log::setup(log::Level::Error);
    try {
        guarded("Diagnose", []() -> int { throw std::out_of_range("map::at"); });
        FAIL() << "no exception";
    } catch (const sdbus::Error& e) {
        EXPECT_EQ(e.getName(), "org.gpuswap1.Error.Internal");
        EXPECT_NE(e.getMessage().find("Diagnose: map::at"), std::string::npos) << e.getMessage();
    }
    try {
        guarded("Diagnose", []() -> int { throw 7; });
        FAIL() << "no exception";
    } catch (const sdbus::Error& e) {
        EXPECT_EQ(e.getName(), "org.gpuswap1.Error.Internal");
    }
}

TEST(BusGuard, SdbusErrorsStayAsTheyAre)
{
    try {
        guarded("Test", []() -> int { throw bus::error("org.freedesktop.DBus.Error.AccessDenied", "no"); });
        FAIL() << "no exception";
    } catch (const sdbus::Error& e) {
        EXPECT_EQ(e.getName(), "org.freedesktop.DBus.Error.AccessDenied");
    }
}
