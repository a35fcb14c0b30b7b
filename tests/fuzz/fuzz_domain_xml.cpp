// SPDX-License-Identifier: GPL-2.0-or-later
// The domain XML the hook passes: any bytes give a list of well-formed addresses and a
// profile from its metadata (or none), or a Failure, never a crash.
#include "domain_xml.hpp"
#include "errors.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size)
{
    const std::string_view xml(reinterpret_cast<const char*>(data), size);
    try {
        for (const gpuswap::PciAddress& address : gpuswap::pciHostdevsOfDomain(xml))
            if (!gpuswap::PciAddress::parse(address.str()))
                std::abort();
    } catch (const gpuswap::Failure&) {
    }
    try {
        if (const auto profile = gpuswap::profileOfDomain(xml, "fuzz"))
            for (const auto& [address, sizes] : profile->bars)
                if (!gpuswap::PciAddress::parse(address.str()) || sizes.empty())
                    std::abort();
    } catch (const gpuswap::Failure&) {
    }
    return 0;
}
