// SPDX-License-Identifier: GPL-2.0-or-later
// An a{sv} of options as a caller sends it: names and values from the input; the result
// is parsed options or Failure(InvalidArgument).
#include "errors.hpp"
#include "request_options.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size)
{
    // Records: a type byte, a name length, the name, then a bool byte or a string length
    // and the string.
    std::map<std::string, gpuswap::OptionValue> options;
    size_t at = 0;
    const auto take = [&](size_t count) {
        const size_t n = std::min(count, size - at);
        std::string part(reinterpret_cast<const char*>(data) + at, n);
        at += n;
        return part;
    };
    while (at + 2 <= size) {
        const uint8_t type = data[at++];
        std::string name = take(data[at++] % 24);
        if (type % 3 == 0 && at < size)
            options.emplace(std::move(name), data[at++] % 2 == 1);
        else if (type % 3 == 1 && at < size)
            options.emplace(std::move(name), take(data[at++]));
        else
            options.emplace(std::move(name), gpuswap::OtherType{take(2)});
    }
    static const std::set<std::string> accepted{"dry-run", "interactive", "no-queue", "force", "domain-xml"};
    try {
        const gpuswap::RequestOptions parsed = gpuswap::parseRequestOptions(options, accepted);
        if (parsed.domainXml && !options.contains("domain-xml"))
            std::abort();
    } catch (const gpuswap::Failure& failure) {
        if (failure.code() != gpuswap::ErrorCode::InvalidArgument)
            std::abort();
    }
    return 0;
}
