// SPDX-License-Identifier: GPL-2.0-or-later
#include "pci_address.hpp"

#include <algorithm>
#include <cctype>

namespace gpuswap {

namespace {

bool isHex(char c) { return std::isxdigit(static_cast<unsigned char>(c)) != 0; }

int hexValue(char c)
{
    return std::isdigit(static_cast<unsigned char>(c)) != 0 ? c - '0'
                                                           : std::tolower(static_cast<unsigned char>(c)) - 'a' + 10;
}

} // namespace

std::optional<PciAddress> PciAddress::parse(std::string_view text)
{
    // DDDD:BB:DD.F
    static constexpr std::string_view shape = "xxxx:xx:xx.x";
    if (text.size() != shape.size())
        return std::nullopt;
    for (size_t i = 0; i < shape.size(); ++i) {
        const bool ok = shape[i] == 'x' ? isHex(text[i]) : text[i] == shape[i];
        if (!ok)
            return std::nullopt;
    }
    const int device = hexValue(text[8]) * 16 + hexValue(text[9]);
    const int function = hexValue(text[11]);
    if (device > 0x1f || function > 7)
        return std::nullopt;
    std::string canonical(text);
    std::transform(canonical.begin(), canonical.end(), canonical.begin(),
                   [](char c) { return static_cast<char>(std::tolower(static_cast<unsigned char>(c))); });
    return PciAddress(std::move(canonical));
}

std::optional<PciAddress> PciAddress::parseAnyForm(std::string_view text)
{
    if (text.size() == 7)  // lspci: BB:DD.F
        return parse("0000:" + std::string(text));
    if (text.size() == 16 && text.starts_with("pci_") && text[8] == '_' && text[11] == '_' && text[14] == '_') {
        std::string kernelForm(text.substr(4));  // virsh nodedev: pci_DDDD_BB_DD_F
        kernelForm[4] = ':';
        kernelForm[7] = ':';
        kernelForm[10] = '.';
        return parse(kernelForm);
    }
    return parse(text);
}

std::string PciAddress::objectPath() const
{
    std::string path = "/org/gpuswap1/device/pci_" + text_;
    std::replace_if(path.begin() + static_cast<std::ptrdiff_t>(path.size() - text_.size()), path.end(),
                    [](char c) { return c == ':' || c == '.'; }, '_');
    return path;
}

} // namespace gpuswap
