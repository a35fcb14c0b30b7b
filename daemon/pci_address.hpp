// SPDX-License-Identifier: GPL-2.0-or-later
#pragma once

#include <compare>
#include <optional>
#include <string>
#include <string_view>

namespace gpuswap {

// A PCI function address in the kernel's canonical form, DDDD:BB:DD.F in lower-case hex.
class PciAddress {
public:
    // Accepts either case; rejects anything that is not exactly DDDD:BB:DD.F with
    // device <= 0x1f and function <= 7, as the kernel never names such a function.
    static std::optional<PciAddress> parse(std::string_view text);
    // What people paste: also lspci's BB:DD.F (domain 0000) and virsh's pci_DDDD_BB_DD_F.
    // For the command line and the configuration; the D-Bus interface takes parse() only.
    static std::optional<PciAddress> parseAnyForm(std::string_view text);

    const std::string& str() const { return text_; }
    // Domain, bus and device: the functions of one card share it.
    std::string_view slot() const { return std::string_view(text_).substr(0, 10); }
    // "/org/gpuswap1/device/pci_0000_03_00_0"
    std::string objectPath() const;

    auto operator<=>(const PciAddress&) const = default;

private:
    explicit PciAddress(std::string text) : text_(std::move(text)) {}
    std::string text_;
};

} // namespace gpuswap
