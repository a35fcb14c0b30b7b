// SPDX-License-Identifier: GPL-2.0-or-later
#include "bar_size.hpp"

#include <bit>
#include <charconv>

namespace gpuswap {

bool isValidBarSize(uint64_t bytes) { return bytes >= kMiB && std::has_single_bit(bytes); }

std::optional<uint64_t> parseBarSize(std::string_view text)
{
    if (text.size() < 2)
        return std::nullopt;
    unsigned shift = 0;
    switch (text.back()) {
    case 'K': shift = 10; break;
    case 'M': shift = 20; break;
    case 'G': shift = 30; break;
    case 'T': shift = 40; break;
    default: return std::nullopt;
    }
    const std::string_view digits = text.substr(0, text.size() - 1);
    uint64_t count = 0;
    const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), count);
    if (ec != std::errc() || end != digits.data() + digits.size() || count == 0)
        return std::nullopt;
    if (count > (UINT64_MAX >> shift))
        return std::nullopt;
    const uint64_t bytes = count << shift;
    if (!isValidBarSize(bytes))
        return std::nullopt;
    return bytes;
}

std::string formatSize(uint64_t bytes)
{
    static constexpr struct {
        unsigned shift;
        char suffix;
    } units[] = {{40, 'T'}, {30, 'G'}, {20, 'M'}, {10, 'K'}};
    for (const auto& unit : units) {
        const uint64_t one = uint64_t{1} << unit.shift;
        if (bytes >= one && bytes % one == 0)
            return std::to_string(bytes >> unit.shift) + unit.suffix;
    }
    return std::to_string(bytes);
}

std::vector<uint64_t> sizesInMask(uint64_t mask)
{
    std::vector<uint64_t> sizes;
    // Bit 43 is 2^43 MiB = 8 EiB: the largest size a uint64_t byte count can hold.
    for (unsigned bit = 0; bit <= 43; ++bit)
        if ((mask >> bit) & 1U)
            sizes.push_back(kMiB << bit);
    return sizes;
}

std::optional<unsigned> maskBitForSize(uint64_t bytes)
{
    if (!isValidBarSize(bytes))
        return std::nullopt;
    return static_cast<unsigned>(std::countr_zero(bytes) - std::countr_zero(kMiB));
}

std::string formatSizeList(const std::vector<uint64_t>& sizes)
{
    std::string text;
    for (uint64_t size : sizes) {
        if (!text.empty())
            text += ' ';
        text += formatSize(size);
    }
    return text.empty() ? "none" : text;
}

} // namespace gpuswap
