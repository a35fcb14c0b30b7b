// SPDX-License-Identifier: GPL-2.0-or-later
#pragma once

#include <cstdint>
#include <string>
#include <variant>
#include <vector>

// gpuswapctl's command line: parsed and checked completely before anything talks to the
// bus, so a typo is a usage error (exit 2) whether or not gpuswapd runs.
namespace gpuswap::client {

struct Invocation {
    std::string command;
    // The command's arguments, addresses in the kernel's form (0000:03:00.0).
    std::vector<std::string> arguments;
    uint32_t bar = 0;     // resize-bar
    uint64_t size = 0;    // resize-bar, in bytes
    bool json = false;
    bool dryRun = false;
    bool force = false;
    bool defaultDriver = false;
    bool askPassword = true;
};

// --help, --version: print this on stdout and exit 0.
struct Text {
    std::string text;
};

// A usage error: print "gpuswapctl: <problem>" and the hint on stderr, exit 2.
struct UsageError {
    std::string problem;
    std::string hint;  // "Try 'gpuswapctl prepare --help'."
};

using ParsedCommandLine = std::variant<Invocation, Text, UsageError>;

ParsedCommandLine parseCommandLine(const std::vector<std::string>& argv, const std::string& version);

} // namespace gpuswap::client
