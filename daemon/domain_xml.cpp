// SPDX-License-Identifier: GPL-2.0-or-later
#include "domain_xml.hpp"

#include "errors.hpp"

#include <pugixml.hpp>

#include <cstdio>

namespace gpuswap {

namespace {

// libvirt writes domain='0x0000' bus='0x03' slot='0x00' function='0x0'; decimal is valid too.
bool parseNumber(const pugi::xml_attribute& attribute, unsigned long maximum, unsigned long& value)
{
    const std::string text = attribute.value();
    if (text.empty())
        return false;
    char* end = nullptr;
    value = std::strtoul(text.c_str(), &end, 0);
    return end != nullptr && *end == '\0' && value <= maximum;
}

} // namespace

std::vector<PciAddress> pciHostdevsOfDomain(std::string_view domainXml)
{
    pugi::xml_document document;
    const auto parsed = document.load_buffer(domainXml.data(), domainXml.size(), pugi::parse_default, pugi::encoding_utf8);
    if (!parsed)
        throw Failure(ErrorCode::InvalidArgument,
                      std::string("domain-xml does not parse: ") + parsed.description() + " at offset " +
                          std::to_string(parsed.offset));
    std::vector<PciAddress> addresses;
    for (const auto& node : document.select_nodes("/domain/devices/hostdev[@mode='subsystem'][@type='pci']/source/address")) {
        const pugi::xml_node address = node.node();
        unsigned long domain = 0;
        unsigned long bus = 0;
        unsigned long slot = 0;
        unsigned long function = 0;
        if (!parseNumber(address.attribute("domain"), 0xffff, domain) || !parseNumber(address.attribute("bus"), 0xff, bus) ||
            !parseNumber(address.attribute("slot"), 0x1f, slot) || !parseNumber(address.attribute("function"), 7, function))
            throw Failure(ErrorCode::InvalidArgument, "domain-xml has a PCI hostdev with a malformed source address");
        char text[16];
        std::snprintf(text, sizeof text, "%04lx:%02lx:%02lx.%lx", domain, bus, slot, function);
        addresses.push_back(*PciAddress::parse(text));
    }
    return addresses;
}

} // namespace gpuswap
