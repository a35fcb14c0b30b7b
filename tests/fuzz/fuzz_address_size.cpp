// SPDX-License-Identifier: GPL-2.0-or-later
// PCI addresses and BAR sizes as callers and config files write them: what parses
// prints back the same, and text is escaped and cut without splitting a character.
#include "bar_size.hpp"
#include "pci_address.hpp"
#include "text.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size)
{
    const std::string text(reinterpret_cast<const char*>(data), size);
    if (const auto address = gpuswap::PciAddress::parse(text)) {
        const auto again = gpuswap::PciAddress::parse(address->str());
        if (!again || again->str() != address->str())
            std::abort();
    }
    if (const auto bytes = gpuswap::parseBarSize(text)) {
        if (!gpuswap::isValidBarSize(*bytes) || gpuswap::parseBarSize(gpuswap::formatSize(*bytes)) != bytes)
            std::abort();
    }
    const std::string escaped = gpuswap::escapeText(text);
    if (gpuswap::escapeText(escaped) != escaped)
        std::abort();
    const std::string_view prefix = gpuswap::utf8Prefix(text, size / 2);
    if (prefix.size() > size / 2 || text.compare(0, prefix.size(), prefix) != 0)
        std::abort();
    return 0;
}
