// SPDX-License-Identifier: GPL-2.0-or-later
#include "udev_watch.hpp"

#include <gtest/gtest.h>

using gpuswap::pciAddressInDevpath;

TEST(UdevWatch, FindsThePciFunctionOfAnEvent)
{
    EXPECT_EQ(pciAddressInDevpath("/devices/pci0000:00/0000:00:01.0/0000:03:00.0")->str(), "0000:03:00.0");
    EXPECT_EQ(pciAddressInDevpath("/devices/pci0000:00/0000:00:01.0/0000:03:00.0/drm/card1")->str(), "0000:03:00.0");
    EXPECT_EQ(pciAddressInDevpath("/devices/pci0000:00/0000:00:1f.3/sound/card0/controlC0")->str(), "0000:00:1f.3");
    EXPECT_FALSE(pciAddressInDevpath("/devices/virtual/misc/vfio"));
    EXPECT_FALSE(pciAddressInDevpath(""));
}
