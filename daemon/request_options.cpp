// SPDX-License-Identifier: GPL-2.0-or-later
#include "request_options.hpp"

#include "errors.hpp"

namespace gpuswap {

namespace {

std::string typeName(const OptionValue& value)
{
    if (std::holds_alternative<bool>(value))
        return "b";
    if (std::holds_alternative<std::string>(value))
        return "s";
    return std::get<OtherType>(value).signature;
}

} // namespace

RequestOptions parseRequestOptions(const std::map<std::string, OptionValue>& options, const std::set<std::string>& accepted)
{
    RequestOptions parsed;
    for (const auto& [name, value] : options) {
        if (!accepted.contains(name)) {
            std::string list;
            for (const auto& known : accepted) {
                if (!list.empty())
                    list += ", ";
                list += known;
            }
            std::string message = "unknown option \"";
            message.append(name).append("\" (this method takes: ").append(list).append(")");
            throw Failure(ErrorCode::InvalidArgument, message);
        }
        const bool wantsString = name == "domain-xml";
        const bool typeOk = wantsString ? std::holds_alternative<std::string>(value) : std::holds_alternative<bool>(value);
        if (!typeOk)
            throw Failure(ErrorCode::InvalidArgument, "option \"" + name + "\" must be of type " +
                                                          (wantsString ? "s" : "b") + ", not " + typeName(value));
        if (name == "domain-xml")
            parsed.domainXml = std::get<std::string>(value);
        else if (name == "dry-run")
            parsed.dryRun = std::get<bool>(value);
        else if (name == "interactive")
            parsed.interactive = std::get<bool>(value);
        else if (name == "no-queue")
            parsed.noQueue = std::get<bool>(value);
        else if (name == "force")
            parsed.force = std::get<bool>(value);
    }
    return parsed;
}

} // namespace gpuswap
