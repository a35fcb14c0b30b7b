// SPDX-License-Identifier: GPL-2.0-or-later
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace gpuswap {

// Resizable BAR sizes: powers of two of at least 1 MiB (PCIe Resizable BAR capability).
constexpr uint64_t kMiB = uint64_t{1} << 20;

bool isValidBarSize(uint64_t bytes);

// "8G", "256M", "1024K", "1T": a power of two with a binary suffix, at least 1 MiB.
std::optional<uint64_t> parseBarSize(std::string_view text);

// 8 GiB -> "8G", 256 MiB -> "256M"; sizes that are not whole KiB print in bytes.
std::string formatSize(uint64_t bytes);

// The kernel's resourceN_resize mask: bit n set means 2^n MiB is supported.
std::vector<uint64_t> sizesInMask(uint64_t mask);
std::optional<unsigned> maskBitForSize(uint64_t bytes);

// "256M 512M 1G" for error messages.
std::string formatSizeList(const std::vector<uint64_t>& sizes);

} // namespace gpuswap
