// SPDX-License-Identifier: GPL-2.0-or-later
// The domain XML the hook passes: any bytes give a list of well-formed addresses or a
// Failure, never a crash.
#include "domain_xml.hpp"
#include "errors.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size)
{
    try {
        for (const gpuswap::PciAddress& address :
             gpuswap::pciHostdevsOfDomain(std::string_view(reinterpret_cast<const char*>(data), size)))
            if (!gpuswap::PciAddress::parse(address.str()))
                std::abort();
    } catch (const gpuswap::Failure&) {
    }
    return 0;
}
