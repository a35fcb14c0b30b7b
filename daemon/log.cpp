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
#include <optional>
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

// The operation running, as fields (log.hpp): OPERATION, VM or DEVICE, STEP.
struct OperationContext {
    std::string operation;
    std::string subjectKey;  // "VM" or "DEVICE"
    std::string subject;
    unsigned step = 0;
};
std::optional<OperationContext> g_operation;

// The fields of a line: its own, then the operation's unless it names its own.
std::vector<std::pair<std::string, std::string>> fieldsOf(Fields fields)
{
    std::vector<std::pair<std::string, std::string>> all;
    bool ownOperation = false;
    for (const auto& [key, value] : fields) {
        all.emplace_back(key, value);
        ownOperation = ownOperation || key == "OPERATION";
    }
    if (g_operation && !ownOperation) {
        all.emplace_back("OPERATION", g_operation->operation);
        if (!g_operation->subject.empty())
            all.emplace_back(g_operation->subjectKey, g_operation->subject);
        if (g_operation->step != 0)
            all.emplace_back("STEP", std::to_string(g_operation->step));
    }
    return all;
}

void writeJournal(Level level, std::string_view message, Fields fields)
{
    std::vector<std::string> lines;
    lines.reserve(fields.size() + 6);
    lines.push_back("MESSAGE=" + std::string(message));
    lines.push_back("PRIORITY=" + std::to_string(syslogPriority(level)));
    lines.emplace_back("SYSLOG_IDENTIFIER=gpuswapd");
    for (const auto& [key, value] : fieldsOf(fields))
        lines.push_back((key == "MESSAGE_ID" ? std::string() : std::string("GPUSWAP_")).append(key).append("=").append(value));
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

void beginOperation(std::string_view operation)
{
    OperationContext context{std::string(operation), {}, {}, 0};
    // "recover:prepare:win11" is about win11 too.
    if (operation.starts_with("recover:"))
        operation.remove_prefix(8);
    const auto colon = operation.find(':');
    if (colon != std::string_view::npos) {
        const std::string_view kind = operation.substr(0, colon);
        context.subjectKey = kind == "prepare" || kind == "release" ? "VM" : "DEVICE";
        context.subject = std::string(operation.substr(colon + 1));
    }
    g_operation = std::move(context);
}

void setStep(unsigned step)
{
    if (g_operation)
        g_operation->step = step;
}

void endOperation() { g_operation.reset(); }

void write(Level level, std::string_view message, Fields fields)
{
    if (level < g_threshold)
        return;
    if (g_toJournal) {
        writeJournal(level, message, fields);
        return;
    }
    std::string line(message);
    for (const auto& [key, value] : fieldsOf(fields))
        line.append(" ").append(key).append("=").append(value);
    if (!g_stderr)
        setup(g_threshold);
    g_stderr->log(spdlogLevel(level), line);
}

} // namespace gpuswap::log
