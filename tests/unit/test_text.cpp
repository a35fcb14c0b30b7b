// SPDX-License-Identifier: GPL-2.0-or-later
#include "text.hpp"

#include <gtest/gtest.h>

using namespace gpuswap;

TEST(EscapeText, PrintableUtf8Passes)
{
    EXPECT_EQ(escapeText("pipewire"), "pipewire");
    EXPECT_EQ(escapeText("grüße 日本 🎮"), "grüße 日本 🎮");
}

TEST(EscapeText, ControlsAndInvalidBytesAreEscaped)
{
    EXPECT_EQ(escapeText(std::string("x\xff")), "x\\xff");
    EXPECT_EQ(escapeText("\x1b]0;owned\x07"), "\\x1b]0;owned\\x07");
    EXPECT_EQ(escapeText("a\nb\tc\x7f"), "a\\x0ab\\x09c\\x7f");
    EXPECT_EQ(escapeText("back\\slash"), "back\\slash");
    EXPECT_EQ(escapeText(std::string("\xc2\x9b" "2J")), "\\xc2\\x9b2J");  // C1 CSI
    EXPECT_EQ(escapeText(std::string("\xe2\x82")), "\\xe2\\x82");         // cut sequence
    EXPECT_EQ(escapeText(std::string("\xc0\xaf")), "\\xc0\\xaf");         // overlong '/'
    EXPECT_EQ(escapeText(std::string("\xed\xa0\x80")), "\\xed\\xa0\\x80"); // surrogate
    EXPECT_EQ(escapeText(std::string("a\0b", 3)), "a\\x00b");
}

TEST(EscapeText, EscapingTwiceChangesNothing)
{
    const std::string once = escapeText(std::string("x\xff\x1b[31m\\"));
    EXPECT_EQ(escapeText(once), once);
}

TEST(Utf8Prefix, NeverSplitsACharacter)
{
    EXPECT_EQ(utf8Prefix("abcdef", 4), "abcd");
    EXPECT_EQ(utf8Prefix("ab日本", 4), "ab");
    EXPECT_EQ(utf8Prefix("ab日本", 5), "ab日");
    EXPECT_EQ(utf8Prefix("short", 64), "short");
    EXPECT_EQ(utf8Prefix(std::string("\xff\xff\xff"), 2), std::string("\xff\xff"));
}

TEST(Text, SecondsAsPeopleReadThem)
{
    using namespace std::chrono_literals;
    EXPECT_EQ(gpuswap::secondsText(8s), "8 s");
    EXPECT_EQ(gpuswap::secondsText(1500ms), "1.5 s");
    EXPECT_EQ(gpuswap::secondsText(30000ms), "30 s");
    EXPECT_EQ(gpuswap::secondsText(240ms), "0.2 s");
}
