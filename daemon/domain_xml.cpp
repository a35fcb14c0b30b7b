// SPDX-License-Identifier: GPL-2.0-or-later
#include "domain_xml.hpp"

#include "errors.hpp"

#include <nlohmann/json.hpp>
#include <pugixml.hpp>

#include <cstdio>
#include <string>

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

pugi::xml_document parseDomain(std::string_view domainXml)
{
    pugi::xml_document document;
    const auto parsed = document.load_buffer(domainXml.data(), domainXml.size(), pugi::parse_default, pugi::encoding_utf8);
    if (!parsed)
        throw Failure(ErrorCode::InvalidArgument,
                      std::string("domain-xml does not parse: ") + parsed.description() + " at offset " +
                          std::to_string(parsed.offset));
    return document;
}

// The namespace URI an element's prefix stands for (pugixml does not resolve namespaces).
std::string namespaceOf(pugi::xml_node element)
{
    const std::string name = element.name();
    const auto colon = name.find(':');
    const std::string attribute = colon == std::string::npos ? "xmlns" : "xmlns:" + name.substr(0, colon);
    for (pugi::xml_node node = element; node; node = node.parent())
        if (const auto declared = node.attribute(attribute.c_str()))
            return declared.value();
    return {};
}

std::string localName(pugi::xml_node element)
{
    const std::string name = element.name();
    const auto colon = name.find(':');
    return colon == std::string::npos ? name : name.substr(colon + 1);
}

std::string trimmed(const char* text)
{
    std::string value(text);
    const auto first = value.find_first_not_of(" \t\r\n");
    if (first == std::string::npos)
        return {};
    return value.substr(first, value.find_last_not_of(" \t\r\n") - first + 1);
}

} // namespace

std::vector<PciAddress> pciHostdevsOfDomain(std::string_view domainXml)
{
    const pugi::xml_document document = parseDomain(domainXml);
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

std::optional<VmProfile> profileOfDomain(std::string_view domainXml, const std::string& vm)
{
    const pugi::xml_document document = parseDomain(domainXml);
    pugi::xml_node profile;
    for (pugi::xml_node element : document.child("domain").child("metadata").children())
        if (element.type() == pugi::node_element && localName(element) == "profile" && namespaceOf(element) == kProfileNamespace)
            profile = element;
    if (!profile)
        return std::nullopt;
    const std::string origin = "domain " + vm + " <metadata>";
    const auto fail = [&](const std::string& what) { throw Failure(ErrorCode::BadConfig, origin + ": " + what); };
    // The same object a "vms" entry of the configuration file holds, checked by its rules.
    nlohmann::json value = nlohmann::json::object();
    for (pugi::xml_node element : profile.children()) {
        if (element.type() != pugi::node_element)
            continue;
        const std::string name = localName(element);
        if (namespaceOf(element) != kProfileNamespace)
            fail("<" + std::string(element.name()) + "> is not in the profile's namespace " + std::string(kProfileNamespace));
        if (name == "display_manager" || name == "holders") {
            if (value.contains(name))
                fail("<" + name + "> is given twice");
            value[name] = trimmed(element.child_value());
        } else if (name == "stop_unit") {
            value["stop_units"].push_back(trimmed(element.child_value()));
        } else if (name == "bar") {
            std::string device = element.attribute("device").value();
            if (const auto address = PciAddress::parseAnyForm(device))
                device = address->str();  // one JSON key per device, however it is written
            const std::string index = element.attribute("index").value();
            const std::string size = element.attribute("size").value();
            if (device.empty() || index.empty() || size.empty())
                fail("<bar> needs the attributes device, index and size (for example device=\"0000:03:00.0\" index=\"0\" size=\"8G\")");
            auto& bars = value["bars"][device];
            if (bars.contains(index))
                fail(std::string("<bar> of ").append(device).append(" BAR ").append(index).append(" is given twice"));
            bars[index] = size;
        } else {
            fail("<" + name + "> is not a profile setting (allowed: display_manager, holders, bar, stop_unit)");
        }
    }
    try {
        return parseVmProfile(value, vm, origin);
    } catch (const ConfigError& e) {
        throw Failure(ErrorCode::BadConfig, e.what());
    }
}

} // namespace gpuswap
