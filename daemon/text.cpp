// SPDX-License-Identifier: GPL-2.0-or-later
#include "text.hpp"

#include <cstdio>

namespace gpuswap {

namespace {

// The length of the valid UTF-8 sequence at text[0], 0 when it is not one (overlong
// forms, surrogates and code points above U+10FFFF are not).
size_t sequenceLength(std::string_view text)
{
    const auto byte = [&](size_t i) { return static_cast<unsigned char>(text[i]); };
    const unsigned char lead = byte(0);
    if (lead < 0x80)
        return 1;
    size_t length = 0;
    unsigned char low = 0x80;
    unsigned char high = 0xbf;
    if (lead >= 0xc2 && lead <= 0xdf) {
        length = 2;
    } else if (lead >= 0xe0 && lead <= 0xef) {
        length = 3;
        low = lead == 0xe0 ? 0xa0 : 0x80;
        high = lead == 0xed ? 0x9f : 0xbf;
    } else if (lead >= 0xf0 && lead <= 0xf4) {
        length = 4;
        low = lead == 0xf0 ? 0x90 : 0x80;
        high = lead == 0xf4 ? 0x8f : 0xbf;
    } else {
        return 0;
    }
    if (text.size() < length || byte(1) < low || byte(1) > high)
        return 0;
    for (size_t i = 2; i < length; ++i)
        if (byte(i) < 0x80 || byte(i) > 0xbf)
            return 0;
    return length;
}

void appendEscaped(std::string& out, unsigned char byte)
{
    char buffer[5];
    std::snprintf(buffer, sizeof buffer, "\\x%02x", byte);
    out += buffer;
}

} // namespace

std::string escapeText(std::string_view text)
{
    std::string out;
    out.reserve(text.size());
    while (!text.empty()) {
        const size_t length = sequenceLength(text);
        const auto lead = static_cast<unsigned char>(text[0]);
        // C1 controls (U+0080-U+009F) act as terminal escapes too.
        const bool c1 = length == 2 && lead == 0xc2 && static_cast<unsigned char>(text[1]) < 0xa0;
        if (length == 0 || c1 || (length == 1 && (lead < 0x20 || lead == 0x7f))) {
            appendEscaped(out, lead);
            text.remove_prefix(1);
            continue;
        }
        out.append(text.substr(0, length));
        text.remove_prefix(length);
    }
    return out;
}

std::string_view utf8Prefix(std::string_view text, size_t maxBytes)
{
    size_t end = 0;
    while (end < text.size()) {
        const size_t length = sequenceLength(text.substr(end));
        const size_t step = length == 0 ? 1 : length;
        if (end + step > maxBytes)
            break;
        end += step;
    }
    return text.substr(0, end);
}

std::string secondsText(std::chrono::nanoseconds duration)
{
    char text[32];
    std::snprintf(text, sizeof text, "%.1f", std::chrono::duration<double>(duration).count());
    std::string shown(text);
    if (shown.ends_with(".0"))
        shown.resize(shown.size() - 2);
    return shown + " s";
}

} // namespace gpuswap
