// SPDX-License-Identifier: GPL-2.0-or-later
#include "domain_xml.hpp"
#include "errors.hpp"
#include "request_options.hpp"

#include <gtest/gtest.h>

using namespace gpuswap;

namespace {

const std::set<std::string> kPrepare{"dry-run", "interactive", "no-queue", "domain-xml"};

ErrorCode codeOf(const std::function<void()>& body)
{
    try {
        body();
    } catch (const Failure& failure) {
        return failure.code();
    }
    return ErrorCode::Internal;
}

} // namespace

TEST(RequestOptions, ParsesKnownOptions)
{
    const auto options = parseRequestOptions({{"dry-run", true}, {"domain-xml", std::string("<domain/>")}}, kPrepare);
    EXPECT_TRUE(options.dryRun);
    EXPECT_FALSE(options.noQueue);
    EXPECT_EQ(options.domainXml, "<domain/>");
}

TEST(RequestOptions, UnknownOrMistypedIsInvalidArgument)
{
    EXPECT_EQ(codeOf([] { parseRequestOptions({{"force", true}}, kPrepare); }), ErrorCode::InvalidArgument);
    EXPECT_EQ(codeOf([] { parseRequestOptions({{"dry-run", std::string("yes")}}, kPrepare); }), ErrorCode::InvalidArgument);
    EXPECT_EQ(codeOf([] { parseRequestOptions({{"domain-xml", true}}, kPrepare); }), ErrorCode::InvalidArgument);
    EXPECT_EQ(codeOf([] { parseRequestOptions({{"no-queue", OtherType{"u"}}}, kPrepare); }), ErrorCode::InvalidArgument);
}

TEST(DomainXml, ReadsThePciHostdevs)
{
    const auto devices = pciHostdevsOfDomain(R"(<domain type='kvm'><name>win11</name><devices>
        <hostdev mode='subsystem' type='pci' managed='yes'>
          <source><address domain='0x0000' bus='0x0a' slot='0x00' function='0x1'/></source>
          <address type='pci' domain='0x0000' bus='0x06' slot='0x00' function='0x0'/>
        </hostdev>
        <hostdev mode='subsystem' type='usb'><source><vendor id='0x046d'/></source></hostdev>
        <interface type='network'><address type='pci' domain='0x0000' bus='0x01' slot='0x00' function='0x0'/></interface>
        <hostdev mode='subsystem' type='pci'><source><address domain='0' bus='3' slot='0' function='0'/></source></hostdev>
      </devices></domain>)");
    ASSERT_EQ(devices.size(), 2U);
    EXPECT_EQ(devices[0].str(), "0000:0a:00.1");
    EXPECT_EQ(devices[1].str(), "0000:03:00.0");
}

TEST(DomainXml, BrokenXmlOrAddressIsInvalidArgument)
{
    EXPECT_EQ(codeOf([] { pciHostdevsOfDomain("<domain><devices>"); }), ErrorCode::InvalidArgument);
    EXPECT_EQ(codeOf([] {
                  pciHostdevsOfDomain("<domain><devices><hostdev mode='subsystem' type='pci'><source>"
                                      "<address domain='0x0000' bus='0x03' slot='0x20' function='0x0'/>"
                                      "</source></hostdev></devices></domain>");
              }),
              ErrorCode::InvalidArgument);
    EXPECT_TRUE(pciHostdevsOfDomain("<domain><devices/></domain>").empty());
}
