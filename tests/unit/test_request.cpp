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

namespace {

std::string domainWithMetadata(const std::string& profile)
{
    return "<domain type='kvm'><name>win11</name><metadata>"
           "<libosinfo:libosinfo xmlns:libosinfo='http://libosinfo.org/xmlns/libvirt/domain/1.0'/>" +
           profile + "</metadata><devices/></domain>";
}

std::string messageOf(const std::string& xml)
{
    try {
        profileOfDomain(xml, "win11");
    } catch (const Failure& failure) {
        EXPECT_EQ(failure.code(), ErrorCode::BadConfig);
        return failure.what();
    }
    return "(no error)";
}

} // namespace

TEST(DomainXml, ProfileFromMetadataByNamespaceNotPrefix)
{
    const auto profile = profileOfDomain(domainWithMetadata(R"(
        <gs:profile xmlns:gs="https://gpuswap.org/xmlns/profile/1">
          <gs:display_manager> keep </gs:display_manager>
          <gs:holders>ignore</gs:holders>
          <gs:bar device="03:00.0" index="0" size="8G"/>
          <gs:bar device="0000:03:00.0" index="2" size="256M"/>
          <gs:stop_unit>nvidia-persistenced.service</gs:stop_unit>
        </gs:profile>)"), "win11");
    ASSERT_TRUE(profile);
    EXPECT_EQ(profile->name, "win11");
    EXPECT_TRUE(profile->devices.empty());
    EXPECT_EQ(profile->displayManager, DisplayManagerPolicy::Keep);
    EXPECT_EQ(profile->holders, HolderPolicy::Ignore);
    const auto gpu = *PciAddress::parse("0000:03:00.0");
    EXPECT_EQ(profile->bars.at(gpu).at(0), 8ULL << 30);
    EXPECT_EQ(profile->bars.at(gpu).at(2), 256ULL << 20);
    EXPECT_EQ(profile->stopUnits, std::vector<std::string>{"nvidia-persistenced.service"});
    // An empty profile is a profile: the defaults, devices from the hostdevs.
    EXPECT_TRUE(profileOfDomain(domainWithMetadata(R"(<profile xmlns="https://gpuswap.org/xmlns/profile/1"/>)"), "win11"));
}

TEST(DomainXml, NoProfileWithoutOurNamespace)
{
    EXPECT_FALSE(profileOfDomain(domainWithMetadata(""), "win11"));
    EXPECT_FALSE(profileOfDomain(domainWithMetadata(R"(<x:profile xmlns:x="https://example.org/other"/>)"), "win11"));
    EXPECT_FALSE(profileOfDomain("<domain><devices/></domain>", "win11"));
}

TEST(DomainXml, MalformedMetadataIsRefusedLikeTheConfigFile)
{
    const std::string ns = R"( xmlns:g="https://gpuswap.org/xmlns/profile/1")";
    EXPECT_EQ(messageOf(domainWithMetadata("<g:profile" + ns + "><g:display_manager>sometimes</g:display_manager></g:profile>")),
              "domain win11 <metadata>: display_manager: \"sometimes\" is not one of \"restart\", \"keep\", \"stop\"");
    EXPECT_EQ(messageOf(domainWithMetadata("<g:profile" + ns + "><g:bar device=\"03:00.0\" index=\"7\" size=\"8G\"/></g:profile>")),
              "domain win11 <metadata>: bars/0000:03:00.0/7: \"7\" is not a BAR index 0-5");
    EXPECT_EQ(messageOf(domainWithMetadata("<g:profile" + ns + "><g:bar device=\"03:00.0\" index=\"0\" size=\"3G\"/></g:profile>"))
                  .substr(0, 63),
              "domain win11 <metadata>: bars/0000:03:00.0/0: \"3G\" is not a BAR");
    EXPECT_EQ(messageOf(domainWithMetadata("<g:profile" + ns + "><g:bar device=\"03:00.0\" index=\"0\"/></g:profile>")).substr(0, 60),
              "domain win11 <metadata>: <bar> needs the attributes device, ");
    EXPECT_EQ(messageOf(domainWithMetadata("<g:profile" + ns + "><g:devices>0000:03:00.0</g:devices></g:profile>")),
              "domain win11 <metadata>: <devices> is not a profile setting (allowed: display_manager, holders, bar, stop_unit)");
    EXPECT_EQ(messageOf(domainWithMetadata("<g:profile" + ns + "><g:holders>wait</g:holders><g:holders>ignore</g:holders></g:profile>")),
              "domain win11 <metadata>: <holders> is given twice");
}
