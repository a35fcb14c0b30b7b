// SPDX-License-Identifier: GPL-2.0-or-later
#include "journal.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <system_error>

namespace gpuswap {

using nlohmann::json;

namespace {

json settingsToJson(const DeviceSettings& settings)
{
    json list = json::array();
    for (const auto& [address, setting] : settings) {
        json entry = toJson(setting);
        entry["address"] = address.str();
        list.push_back(entry);
    }
    return list;
}

DeviceSettings settingsFromJson(const json& list)
{
    DeviceSettings settings;
    for (const json& entry : list) {
        auto address = PciAddress::parse(entry.at("address").get<std::string>());
        if (!address)
            throw std::runtime_error("malformed address " + entry.at("address").dump());
        settings.emplace_back(*address, settingFromJson(entry));
    }
    return settings;
}

[[noreturn]] void fail(const std::string& what)
{
    throw std::runtime_error(what + ": " + std::error_code(errno, std::generic_category()).message());
}

} // namespace

Journal::Journal(std::filesystem::path directory) : directory_(std::move(directory)), path_(directory_ / "state.json") {}

DaemonState Journal::load() const
{
    std::ifstream file(path_);
    if (!file)
        return {};
    std::stringstream text;
    text << file.rdbuf();
    DaemonState state;
    try {
        const json document = json::parse(text.str());
        for (const auto& [vm, entry] : document.at("prepared").items())
            state.prepared[vm] = {settingsFromJson(entry.at("original")), entry.at("display_manager").get<std::string>(),
                                  entry.value("left_stopped", std::vector<std::string>())};
        if (!document.at("operation").is_null()) {
            const json& operation = document.at("operation");
            state.operation = OperationRecord{operation.at("name").get<std::string>(),
                                              settingsFromJson(operation.at("before")),
                                              operation.at("stopped_units").get<std::vector<std::string>>(),
                                              operation.at("step").get<unsigned>(),
                                              operation.at("rolling_back").get<bool>()};
        }
    } catch (const json::exception& e) {
        throw std::runtime_error(path_.string() + " is corrupt: " + e.what());
    }
    return state;
}

void Journal::save(const DaemonState& state) const
{
    json prepared = json::object();
    for (const auto& [vm, record] : state.prepared)
        prepared[vm] = {{"original", settingsToJson(record.original)},
                        {"display_manager", record.displayManagerUnit},
                        {"left_stopped", record.leftStopped}};
    json operation = nullptr;
    if (state.operation)
        operation = {{"name", state.operation->name},
                     {"before", settingsToJson(state.operation->before)},
                     {"stopped_units", state.operation->stoppedUnits},
                     {"step", state.operation->step},
                     {"rolling_back", state.operation->rollingBack}};
    const std::string text = json{{"prepared", prepared}, {"operation", operation}}.dump(2) + "\n";

    std::filesystem::create_directories(directory_);
    const std::filesystem::path temporary = path_.string() + ".new";
    const int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        fail("cannot write " + temporary.string());
    const bool written = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) && ::fsync(fd) == 0;
    const int savedErrno = errno;
    ::close(fd);
    errno = savedErrno;
    if (!written)
        fail("cannot write " + temporary.string());
    if (::rename(temporary.c_str(), path_.c_str()) != 0)
        fail("cannot replace " + path_.string());
}

} // namespace gpuswap
