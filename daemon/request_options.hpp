// SPDX-License-Identifier: GPL-2.0-or-later
#pragma once

#include <map>
#include <optional>
#include <set>
#include <string>
#include <variant>

namespace gpuswap {

// An a{sv} option as the bus layer hands it over: a boolean, a string, or the
// D-Bus signature of any other type (always a wrong type here).
struct OtherType {
    std::string signature;
};
using OptionValue = std::variant<bool, std::string, OtherType>;

struct RequestOptions {
    bool dryRun = false;
    bool interactive = false;
    bool noQueue = false;
    bool force = false;
    std::optional<std::string> domainXml;
};

// The option names a method accepts: "dry-run", "interactive", "no-queue", "force", "domain-xml".
// Unknown names and wrong types throw Failure(InvalidArgument).
RequestOptions parseRequestOptions(const std::map<std::string, OptionValue>& options, const std::set<std::string>& accepted);

} // namespace gpuswap
