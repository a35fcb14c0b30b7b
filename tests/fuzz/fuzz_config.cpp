// SPDX-License-Identifier: GPL-2.0-or-later
// The configuration parser takes any bytes: it returns a Config or throws ConfigError,
// and an error message is valid text for a D-Bus reply.
#include "config.hpp"
#include "text.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size)
{
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    try {
        const gpuswap::Config config = gpuswap::parseConfig(text, "gpuswapd.json");
        for (const auto& [name, vm] : config.vms)
            if (!gpuswap::isValidVmName(name))
                std::abort();
    } catch (const gpuswap::ConfigError& e) {
        if (gpuswap::escapeText(e.what()).empty())
            std::abort();
    }
    return 0;
}
