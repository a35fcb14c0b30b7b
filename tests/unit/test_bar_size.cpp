// SPDX-License-Identifier: GPL-2.0-or-later
#include "bar_size.hpp"

#include <gtest/gtest.h>

using namespace gpuswap;

TEST(BarSize, ParsesPowersOfTwoWithBinarySuffix)
{
    EXPECT_EQ(parseBarSize("8G"), uint64_t{8} << 30);
    EXPECT_EQ(parseBarSize("256M"), uint64_t{256} << 20);
    EXPECT_EQ(parseBarSize("1024K"), uint64_t{1} << 20);
    EXPECT_EQ(parseBarSize("1T"), uint64_t{1} << 40);
}

TEST(BarSize, RejectsWhatIsNoBarSize)
{
    for (const char* text : {"3K", "12M", "-1", "8X", "", "G", "0M", "512K", "8g", " 8G", "8G ", "1.5G", "+8G",
                             "99999999999999999999T"})
        EXPECT_FALSE(parseBarSize(text)) << text;
}

TEST(BarSize, FormatsInTheLargestWholeUnit)
{
    EXPECT_EQ(formatSize(uint64_t{16} << 30), "16G");
    EXPECT_EQ(formatSize(uint64_t{256} << 20), "256M");
    EXPECT_EQ(formatSize(uint64_t{1536} << 20), "1536M");
    EXPECT_EQ(formatSize(3), "3");
}

TEST(BarSize, DecodesTheKernelsResizeMask)
{
    // RX 6800 BAR0 as the kernel prints it: 256M..16G is bits 8..14.
    const auto sizes = sizesInMask(0x7f00);
    ASSERT_EQ(sizes.size(), 7U);
    EXPECT_EQ(formatSizeList(sizes), "256M 512M 1G 2G 4G 8G 16G");
    EXPECT_EQ(maskBitForSize(uint64_t{16} << 30), 14U);
    EXPECT_EQ(maskBitForSize(kMiB), 0U);
    EXPECT_FALSE(maskBitForSize(3));
    EXPECT_EQ(formatSizeList({}), "none");
}
