// SPDX-License-Identifier: GPL-2.0-or-later
#include "pci_address.hpp"

#include <gtest/gtest.h>

using gpuswap::PciAddress;

TEST(PciAddress, AcceptsCanonicalAndLowerCasesHex)
{
    auto address = PciAddress::parse("0000:0A:1f.7");
    ASSERT_TRUE(address);
    EXPECT_EQ(address->str(), "0000:0a:1f.7");
    EXPECT_EQ(address->slot(), "0000:0a:1f");
}

TEST(PciAddress, RejectsMalformed)
{
    for (const char* text : {"", "0000:03:00", "03:00.0", "0000:03:00.8", "0000:03:20.0", "0000:03:00.0 ",
                             "0000-03-00.0", "g000:03:00.0", "0000:03:00.0/../x", "00000:03:00.0", "../../..",
                             "0000:03:00.-"})
        EXPECT_FALSE(PciAddress::parse(text)) << text;
}

TEST(PciAddress, ObjectPathEscapesSeparators)
{
    EXPECT_EQ(PciAddress::parse("0000:03:00.1")->objectPath(), "/org/gpuswap1/device/pci_0000_03_00_1");
}

TEST(PciAddress, AnyFormTakesLspciAndVirshNames)
{
    EXPECT_EQ(PciAddress::parseAnyForm("03:00.1")->str(), "0000:03:00.1");
    EXPECT_EQ(PciAddress::parseAnyForm("pci_0000_03_00_1")->str(), "0000:03:00.1");
    EXPECT_EQ(PciAddress::parseAnyForm("0000:0A:00.0")->str(), "0000:0a:00.0");
    for (const char* text : {"3:00.1", "pci_0000_03_00", "pci_0000:03:00.1", "pci-0000_03_00_1", "03:00.8",
                             "pci_0000_03_20_0", "03-00.1", "0000:03:00.0 "})
        EXPECT_FALSE(PciAddress::parseAnyForm(text)) << text;
}
