// SPDX-License-Identifier: GPL-2.0-or-later
#include "log.hpp"

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <syslog.h>
#include <systemd/sd-journal.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

namespace gpuswap::log {

namespace {

Level g_threshold = Level::Info;
bool g_toJournal = false;
std::shared_ptr<spdlog::logger> g_stderr;

// systemd's rule: log to the journal when JOURNAL_STREAM names our stderr.
bool stderrIsJournal()
{
    const char* stream = std::getenv("JOURNAL_STREAM");
    if (stream == nullptr)
        return false;
    struct stat st {};
    if (fstat(STDERR_FILENO, &st) != 0)
        return false;
    unsigned long long device = 0;
    unsigned long long inode = 0;
    if (std::sscanf(stream, "%llu:%llu", &device, &inode) != 2)
        return false;
    return device == st.st_dev && inode == st.st_ino;
}

int syslogPriority(Level level)
{
    switch (level) {
    case Level::Debug: return LOG_DEBUG;
    case Level::Info: return LOG_INFO;
    case Level::Warning: return LOG_WARNING;
    case Level::Error: return LOG_ERR;
    }
    return LOG_INFO;
}

spdlog::level::level_enum spdlogLevel(Level level)
{
    switch (level) {
    case Level::Debug: return spdlog::level::debug;
    case Level::Info: return spdlog::level::info;
    case Level::Warning: return spdlog::level::warn;
    case Level::Error: return spdlog::level::err;
    }
    return spdlog::level::info;
}

void writeJournal(Level level, std::string_view message, Fields fields)
{
    std::vector<std::string> lines;
    lines.reserve(fields.size() + 3);
    lines.push_back("MESSAGE=" + std::string(message));
    lines.push_back("PRIORITY=" + std::to_string(syslogPriority(level)));
    lines.emplace_back("SYSLOG_IDENTIFIER=gpuswapd");
    for (const auto& [key, value] : fields)
        lines.push_back("GPUSWAP_" + std::string(key) + "=" + std::string(value));
    std::vector<iovec> vectors;
    vectors.reserve(lines.size());
    for (std::string& line : lines)
        vectors.push_back({line.data(), line.size()});
    sd_journal_sendv(vectors.data(), static_cast<int>(vectors.size()));
}

} // namespace

std::optional<Level> parseLevel(std::string_view name)
{
    if (name == "debug")
        return Level::Debug;
    if (name == "info")
        return Level::Info;
    if (name == "warning")
        return Level::Warning;
    if (name == "error")
        return Level::Error;
    return std::nullopt;
}

void setup(Level threshold)
{
    g_threshold = threshold;
    g_toJournal = stderrIsJournal();
    g_stderr = std::make_shared<spdlog::logger>("gpuswapd", std::make_shared<spdlog::sinks::stderr_sink_mt>());
    g_stderr->set_pattern("gpuswapd[%P]: %l: %v");
    g_stderr->set_level(spdlogLevel(threshold));
    g_stderr->flush_on(spdlog::level::trace);
}

void write(Level level, std::string_view message, Fields fields)
{
    if (level < g_threshold)
        return;
    if (g_toJournal) {
        writeJournal(level, message, fields);
        return;
    }
    std::string line(message);
    for (const auto& [key, value] : fields)
        line += " " + std::string(key) + "=" + std::string(value);
    if (!g_stderr)
        setup(g_threshold);
    g_stderr->log(spdlogLevel(level), line);
}

} // namespace gpuswap::log
