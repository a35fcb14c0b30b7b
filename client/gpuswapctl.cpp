// SPDX-License-Identifier: GPL-2.0-or-later
// gpuswapctl: the command line of gpuswapd. See gpuswapctl(1).
#include "bar_size.hpp"
#include "client_bus.hpp"
#include "command_line.hpp"
#include "config.hpp"
#include "device_names.hpp"
#include "text.hpp"
#include "version.hpp"

#include <nlohmann/json.hpp>
#include <sdbus-c++/sdbus-c++.h>
#include <signal.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-login.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace {

using namespace gpuswap;
using client::Invocation;
using nlohmann::json;

enum ExitCode { Ok = 0, Failed = 1, Usage = 2, NotAuthorized = 3, Unreachable = 4 };

// The daemon answers state-changing calls when the work is done: minutes in the worst case.
constexpr auto kLongCall = std::chrono::minutes(30);
constexpr const char* kConfigFile = "/etc/gpuswap/gpuswapd.json";

using Options = std::map<std::string, sdbus::Variant>;
using ManagedObjects = std::map<sdbus::ObjectPath, std::map<std::string, std::map<std::string, sdbus::Variant>>>;
using Finding = sdbus::Struct<std::string, std::string, std::string>;
using Bar = sdbus::Struct<uint32_t, uint64_t, uint64_t>;

// Everything gpuswapd or the system says is escaped before it reaches a terminal.
std::string shown(const std::string& text) { return escapeText(text); }

// Colour on a terminal only, and never when NO_COLOR is set (no-color.org) or TERM=dumb.
class Style {
public:
    Style()
    {
        const char* noColor = std::getenv("NO_COLOR");
        const char* term = std::getenv("TERM");
        colour_ = isatty(STDOUT_FILENO) != 0 && (noColor == nullptr || *noColor == '\0') &&
                  (term == nullptr || std::strcmp(term, "dumb") != 0);
    }
    std::string good(const std::string& text) const { return paint("32", text); }
    std::string bad(const std::string& text) const { return paint("1;31", text); }
    std::string warn(const std::string& text) const { return paint("33", text); }
    std::string dim(const std::string& text) const { return paint("2", text); }
    std::string strong(const std::string& text) const { return paint("1", text); }

private:
    std::string paint(const char* code, const std::string& text) const
    {
        return colour_ ? std::string("\033[") + code + "m" + text + "\033[0m" : text;
    }
    bool colour_ = false;
};

void printJson(const json& document) { std::printf("%s\n", document.dump(2).c_str()); }

std::string seconds(double value)
{
    char text[32];
    std::snprintf(text, sizeof text, "%.2f s", value);
    return text;
}

int exitCodeOf(const sdbus::Error& error)
{
    if (client::isUnreachable(error))
        return Unreachable;
    if (error.getName() == "org.freedesktop.DBus.Error.AccessDenied" ||
        error.getName() == "org.freedesktop.DBus.Error.InteractiveAuthorizationRequired")
        return NotAuthorized;
    return Failed;
}

bool inLoginSession()
{
    char* session = nullptr;
    const int result = sd_pid_get_session(0, &session);
    free(session);
    return result >= 0;
}

// On a terminal, a polkit text agent lets a user outside the group type the admin
// password, as systemctl does.
class PasswordAgent {
public:
    explicit PasswordAgent(bool wanted)
    {
        if (!wanted || isatty(STDIN_FILENO) == 0 || access("/usr/bin/pkttyagent", X_OK) != 0)
            return;
        int ready[2];
        if (pipe(ready) != 0)
            return;
        pid_ = fork();
        if (pid_ == 0) {
            close(ready[0]);
            const std::string parent = std::to_string(getppid());
            const std::string fd = std::to_string(ready[1]);
            // A fallback agent yields to the desktop's agent of the login session; polkit
            // finds a fallback only through the session, so outside one it would never ask.
            const char* fallback = inLoginSession() ? "--fallback" : nullptr;
            execl("/usr/bin/pkttyagent", "pkttyagent", "--process", parent.c_str(), "--notify-fd", fd.c_str(),
                  fallback, static_cast<char*>(nullptr));
            _exit(127);
        }
        close(ready[1]);
        char byte = 0;
        // The agent closes the fd once it is registered.
        while (pid_ > 0 && read(ready[0], &byte, 1) > 0) {
        }
        close(ready[0]);
    }
    ~PasswordAgent()
    {
        if (pid_ <= 0)
            return;
        kill(pid_, SIGTERM);
        waitpid(pid_, nullptr, 0);
    }
    PasswordAgent(const PasswordAgent&) = delete;
    PasswordAgent& operator=(const PasswordAgent&) = delete;

private:
    pid_t pid_ = -1;
};

// The steps of the caller's own operation as gpuswapd reports them (Progress), each with
// the time it took. Signals of other operations (another VM's hand-over this call waits
// behind) are not ours and are ignored.
class StepClock {
public:
    StepClock(std::string operation, bool print, const Style& style)
        : operation_(std::move(operation)), print_(print), live_(print && isatty(STDOUT_FILENO) != 0), style_(style)
    {
    }

    void onProgress(const std::string& operation, uint32_t step, uint32_t steps, const std::string& description)
    {
        if (operation != operation_)
            return;
        finishCurrent();
        current_ = Step{step, steps, description, std::chrono::steady_clock::now(), std::nullopt};
        if (live_) {  // a terminal shows the step while it runs
            std::printf("%s %s", style_.dim("[" + std::to_string(step) + "/" + std::to_string(steps) + "]").c_str(),
                        shown(description).c_str());
            std::fflush(stdout);
        }
    }

    // The call's reply: the last step ends with it.
    void finish() { finishCurrent(); }

    json steps() const
    {
        json list = json::array();
        for (const Step& step : done_)
            list.push_back({{"step", step.number}, {"description", step.description}, {"seconds", *step.seconds}});
        return list;
    }
    bool any() const { return !done_.empty(); }

private:
    struct Step {
        uint32_t number;
        uint32_t of;
        std::string description;
        std::chrono::steady_clock::time_point started;
        std::optional<double> seconds;
    };

    void finishCurrent()
    {
        if (!current_)
            return;
        Step step = std::move(*current_);
        current_.reset();
        step.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - step.started).count();
        if (print_) {
            if (!live_)
                std::printf("%s %s", style_.dim("[" + std::to_string(step.number) + "/" + std::to_string(step.of) + "]").c_str(),
                            shown(step.description).c_str());
            const std::string took = seconds(*step.seconds);
            std::printf(" %s\n", style_.dim("(" + took + ")").c_str());
            std::fflush(stdout);
        }
        done_.push_back(std::move(step));
    }

    std::string operation_;
    bool print_;
    bool live_;
    const Style& style_;
    std::optional<Step> current_;
    std::vector<Step> done_;
};

std::string className(uint32_t classCode)
{
    switch (classCode >> 8) {
    case 0x0300: return "VGA";
    case 0x0302: return "3D";
    case 0x0380: return "Display";
    case 0x0403: return "Audio";
    case 0x0c03: return "USB";
    case 0x0604: return "Bridge";
    default: return "PCI";
    }
}

class Ctl {
public:
    explicit Ctl(const Invocation& invocation)
        : invocation_(invocation), connection_(sdbus::createSystemBusConnection()), manager_(client::managerProxy(*connection_))
    {
    }

    int status();
    int handOver();
    int rebind();
    int resizeBar();
    int diagnose();
    int monitor();
    int reload();
    int report(const sdbus::Error& error, json document = json::object()) const;

private:
    // The options of a state-changing call.
    Options options() const;
    // A state-changing call, run asynchronously so its Progress shows while it runs; the
    // message may ask polkit to prompt (allow-interactive-authorization).
    std::optional<sdbus::MethodReply> longCall(const std::string& method,
                                               const std::function<void(sdbus::MethodCall&)>& arguments,
                                               std::optional<sdbus::Error>& failure, StepClock& clock);
    template <typename Value>
    Value property(const std::string& name)
    {
        return manager_->getProperty(bus::PropertyName{name}).onInterface(bus::InterfaceName{client::kManagerInterface}).get<Value>();
    }
    bool interactive() const { return invocation_.askPassword && isatty(STDIN_FILENO) != 0; }

    const Invocation& invocation_;
    Style style_;
    std::unique_ptr<sdbus::IConnection> connection_;
    std::unique_ptr<sdbus::IProxy> manager_;
};

int Ctl::report(const sdbus::Error& error, json document) const
{
    std::fprintf(stderr, "gpuswapctl: %s\n", style_.bad(shown(error.getMessage())).c_str());
    if (invocation_.json) {
        document["error"] = {{"name", error.getName()}, {"message", error.getMessage()}};
        printJson(document);
    }
    return exitCodeOf(error);
}

Options Ctl::options() const
{
    Options options;
    if (invocation_.dryRun)
        options.emplace("dry-run", sdbus::Variant(true));
    return options;
}

json deviceJson(const std::string& path, const std::map<std::string, sdbus::Variant>& properties)
{
    json bars = json::array();
    for (const Bar& bar : properties.at("Bars").get<std::vector<Bar>>())
        bars.push_back({{"index", std::get<0>(bar)}, {"size", std::get<1>(bar)}, {"supported", std::get<2>(bar)}});
    const auto address = properties.at("Address").get<std::string>();
    const auto name = client::deviceName(address);
    return {{"path", path},
            {"address", address},
            {"vendor_id", properties.at("VendorId").get<uint16_t>()},
            {"device_id", properties.at("DeviceId").get<uint16_t>()},
            {"vendor_name", name.vendor},
            {"model_name", name.model},
            {"class", properties.at("Class").get<uint32_t>()},
            {"driver", properties.at("Driver").get<std::string>()},
            {"driver_override", properties.at("DriverOverride").get<std::string>()},
            {"iommu_group", properties.at("IommuGroup").get<int32_t>()},
            {"boot_vga", properties.at("BootVga").get<bool>()},
            {"bars", bars},
            {"drm_nodes", properties.at("DrmNodes").get<std::vector<std::string>>()}};
}

int Ctl::status()
{
    ManagedObjects objects;
    manager_->callMethod(bus::MethodName{"GetManagedObjects"}).onInterface(bus::InterfaceName{"org.freedesktop.DBus.ObjectManager"}).storeResultsTo(objects);
    json devices = json::array();
    for (const auto& [path, interfaces] : objects)
        if (const auto it = interfaces.find(client::kDeviceInterface); it != interfaces.end())
            devices.push_back(deviceJson(path, it->second));
    json status = {{"version", property<std::string>("Version")},
                   {"profiles", property<std::vector<std::string>>("Profiles")},
                   {"prepared_vms", property<std::vector<std::string>>("PreparedVMs")},
                   {"operation", property<std::string>("Operation")},
                   {"devices", devices}};
    if (invocation_.json) {
        printJson(status);
        return Ok;
    }
    const auto list = [](const json& names) {
        std::string text;
        for (const auto& name : names)
            text += (text.empty() ? "" : ", ") + shown(name.get<std::string>());
        return text.empty() ? std::string("none") : text;
    };
    std::printf("gpuswapd %s\n", shown(status["version"]).c_str());
    std::printf("Profiles:     %s\n", list(status["profiles"]).c_str());
    std::printf("Prepared VMs: %s\n", list(status["prepared_vms"]).c_str());
    const std::string operation = shown(status["operation"]);
    std::printf("Operation:    %s\n\n", operation.empty() ? "idle" : style_.warn(operation).c_str());
    std::printf("%s\n", style_.strong("ADDRESS       DEVICE           DRIVER         GROUP  BARS                               DRM       NAME").c_str());
    for (const json& device : devices) {
        char id[32];
        std::snprintf(id, sizeof id, "%04x:%04x %s%s", device["vendor_id"].get<unsigned>(),
                      device["device_id"].get<unsigned>(), className(device["class"]).c_str(),
                      device["boot_vga"].get<bool>() ? "*" : "");
        std::string bars;
        for (const json& bar : device["bars"]) {
            bars += (bars.empty() ? "" : " ") + std::to_string(bar["index"].get<unsigned>()) + ":" +
                    formatSize(bar["size"]);
            if (const auto sizes = sizesInMask(bar["supported"]); !sizes.empty())
                bars += "(" + formatSize(sizes.front()) + "-" + formatSize(sizes.back()) + ")";
        }
        std::string drm;
        for (const json& node : device["drm_nodes"])
            drm += (drm.empty() ? "" : " ") + shown(node.get<std::string>());
        std::string driver = shown(device["driver"]);
        char driverColumn[64];
        std::snprintf(driverColumn, sizeof driverColumn, "%-14s", driver.empty() ? "-" : driver.c_str());
        const int group = device["iommu_group"];
        std::string name = shown(device["vendor_name"]);
        if (!device["model_name"].get<std::string>().empty())
            name += (name.empty() ? "" : " ") + shown(device["model_name"]);
        std::printf("%-13s %-16s %s %5s  %-34s %-9s %s\n", shown(device["address"]).c_str(), id,
                    driver == "vfio-pci" ? style_.good(driverColumn).c_str() : driverColumn,
                    group < 0 ? "-" : std::to_string(group).c_str(), bars.empty() ? "-" : bars.c_str(),
                    drm.empty() ? "-" : drm.c_str(), name.c_str());
    }
    std::printf("\n* the boot display\n");
    return Ok;
}

std::optional<sdbus::MethodReply> Ctl::longCall(const std::string& method,
                                                const std::function<void(sdbus::MethodCall&)>& arguments,
                                                std::optional<sdbus::Error>& failure, StepClock& clock)
{
    PasswordAgent agent(interactive() && !invocation_.dryRun);
    manager_->uponSignal(bus::SignalName{"Progress"})
        .onInterface(bus::InterfaceName{client::kManagerInterface})
        .call([&clock](const std::string& name, uint32_t step, uint32_t steps, const std::string& description) {
            clock.onProgress(name, step, steps, description);
        });
    bus::finishRegistration(*manager_);
    auto call = manager_->createMethodCall(bus::InterfaceName{client::kManagerInterface}, bus::MethodName{method});
    arguments(call);
    if (interactive())
        sd_bus_message_set_allow_interactive_authorization(bus::RawMessage::of(call), 1);
    std::optional<sdbus::MethodReply> result;
    bool done = false;
    bus::callAsync(*manager_, call, [&](sdbus::MethodReply& reply, const sdbus::Error* error) {
        if (error != nullptr)
            failure = *error;
        else
            result = reply;
        clock.finish();
        done = true;
        connection_->leaveEventLoop();
    }, kLongCall);
    if (!done)
        connection_->enterEventLoop();
    return result;
}

int Ctl::handOver()
{
    const bool prepare = invocation_.command == "prepare";
    const std::string& vm = invocation_.arguments[0];
    const std::string operation = (prepare ? "prepare:" : "release:") + vm;
    StepClock clock(operation, !invocation_.json, style_);
    std::optional<sdbus::Error> failure;
    auto reply = longCall(prepare ? "PrepareVM" : "ReleaseVM",
                          [&](sdbus::MethodCall& call) { call << vm << options(); }, failure, clock);
    json document = {{"vm", vm}, {"operation", invocation_.command}, {"dry_run", invocation_.dryRun}};
    if (!reply) {
        document["steps"] = clock.steps();
        return report(*failure, document);
    }
    std::vector<std::string> steps;
    *reply >> steps;
    if (invocation_.json) {
        document["steps"] = invocation_.dryRun || !clock.any() ? json(steps) : clock.steps();
        printJson(document);
    } else if (steps.empty()) {
        std::printf("%s: nothing to do\n", shown(vm).c_str());
    } else if (invocation_.dryRun) {
        for (size_t i = 0; i < steps.size(); ++i)
            std::printf("would %zu. %s\n", i + 1, shown(steps[i]).c_str());
    } else {
        std::printf("%s: %s in %zu steps\n", shown(vm).c_str(), style_.good("done").c_str(), steps.size());
    }
    return Ok;
}

int Ctl::rebind()
{
    const std::string& address = invocation_.arguments[0];
    const std::string& driver = invocation_.arguments[1];
    Options options = this->options();
    if (invocation_.force)
        options.emplace("force", sdbus::Variant(true));
    StepClock clock("rebind:" + address, !invocation_.json, style_);
    std::optional<sdbus::Error> failure;
    auto reply = longCall("RebindDevice",
                          [&](sdbus::MethodCall& call) { call << address << driver << options; }, failure, clock);
    json document = {{"address", address}, {"driver", driver}, {"dry_run", invocation_.dryRun}};
    if (!reply)
        return report(*failure, document);
    std::string previous;
    *reply >> previous;
    document["previous_driver"] = previous;
    if (invocation_.json)
        printJson(document);
    else
        std::printf("%s: was on %s\n", shown(address).c_str(), previous.empty() ? "no driver" : shown(previous).c_str());
    return Ok;
}

int Ctl::resizeBar()
{
    const std::string& address = invocation_.arguments[0];
    StepClock clock("resize:" + address, !invocation_.json, style_);
    std::optional<sdbus::Error> failure;
    auto reply = longCall("ResizeBar",
                          [&](sdbus::MethodCall& call) { call << address << invocation_.bar << invocation_.size << options(); },
                          failure, clock);
    json document = {{"address", address}, {"bar", invocation_.bar}, {"size", invocation_.size}, {"dry_run", invocation_.dryRun}};
    if (!reply)
        return report(*failure, document);
    uint64_t previous = 0;
    *reply >> previous;
    document["previous_size"] = previous;
    if (invocation_.json)
        printJson(document);
    else
        std::printf("%s BAR %u: %s -> %s\n", shown(address).c_str(), invocation_.bar, formatSize(previous).c_str(),
                    formatSize(invocation_.size).c_str());
    return Ok;
}

int Ctl::diagnose()
{
    const std::string vm = invocation_.arguments.empty() ? std::string() : invocation_.arguments[0];
    std::vector<Finding> findings;
    manager_->callMethod(bus::MethodName{"Diagnose"}).onInterface(bus::InterfaceName{client::kManagerInterface}).withArguments(vm).storeResultsTo(findings);
    if (invocation_.json) {
        json list = json::array();
        for (const Finding& finding : findings)
            list.push_back({{"severity", std::get<0>(finding)}, {"code", std::get<1>(finding)}, {"message", std::get<2>(finding)}});
        printJson(list);
    } else if (findings.empty()) {
        std::printf("%s\n", style_.good("No problems found.").c_str());
    } else {
        for (const Finding& finding : findings) {
            char severity[16];
            std::snprintf(severity, sizeof severity, "%-7s", shown(std::get<0>(finding)).c_str());
            const bool error = std::get<0>(finding) == "error";
            const bool warning = std::get<0>(finding) == "warning";
            std::printf("%s %-22s %s\n", error ? style_.bad(severity).c_str() : warning ? style_.warn(severity).c_str() : severity,
                        shown(std::get<1>(finding)).c_str(), shown(std::get<2>(finding)).c_str());
        }
    }
    const bool errors = std::any_of(findings.begin(), findings.end(), [](const Finding& f) { return std::get<0>(f) == "error"; });
    return errors ? Failed : Ok;
}

int Ctl::monitor()
{
    const bool asJson = invocation_.json;
    manager_->uponSignal(bus::SignalName{"Progress"})
        .onInterface(bus::InterfaceName{client::kManagerInterface})
        .call([this, asJson](const std::string& operation, uint32_t step, uint32_t steps, const std::string& description) {
            if (asJson)
                std::printf("%s\n", json({{"operation", operation}, {"step", step}, {"steps", steps}, {"description", description}}).dump().c_str());
            else
                std::printf("%s %s %s\n", shown(operation).c_str(),
                            style_.dim("[" + std::to_string(step) + "/" + std::to_string(steps) + "]").c_str(),
                            shown(description).c_str());
            std::fflush(stdout);
        });
    manager_->uponSignal(bus::SignalName{"OperationFinished"})
        .onInterface(bus::InterfaceName{client::kManagerInterface})
        .call([this, asJson](const std::string& operation, bool success, const std::string& name, const std::string& message) {
            if (asJson)
                std::printf("%s\n", json({{"operation", operation}, {"finished", true}, {"success", success},
                                          {"error", name}, {"message", message}}).dump().c_str());
            else if (success)
                std::printf("%s %s\n", shown(operation).c_str(), style_.good("finished").c_str());
            else
                std::printf("%s %s: %s: %s\n", shown(operation).c_str(), style_.bad("failed").c_str(), shown(name).c_str(),
                            shown(message).c_str());
            std::fflush(stdout);
        });
    bus::finishRegistration(*manager_);
    connection_->enterEventLoop();
    return Ok;
}

int Ctl::reload()
{
    StepClock clock("reload", false, style_);
    std::optional<sdbus::Error> failure;
    if (!longCall("Reload", [](sdbus::MethodCall&) {}, failure, clock))
        return report(*failure);
    if (invocation_.json)
        printJson({{"reloaded", true}});
    return Ok;
}

// Without gpuswapd: the same parser and messages as a reload.
int checkConfig(const Invocation& invocation)
{
    const std::string file = invocation.arguments.empty() ? kConfigFile : invocation.arguments[0];
    json document = {{"file", file}};
    try {
        const Config config = readConfigFile(file);
        json profiles = json::array();
        for (const auto& [name, _] : config.vms)
            profiles.push_back(name);
        document.update({{"valid", true}, {"profiles", profiles}});
        if (invocation.json)
            printJson(document);
        else
            std::printf("%s: valid, %zu VM profile(s)\n", shown(file).c_str(), config.vms.size());
        return Ok;
    } catch (const ConfigError& e) {
        std::fprintf(stderr, "%s\n", shown(e.what()).c_str());
        if (invocation.json) {
            document.update({{"valid", false}, {"error", e.what()}});
            printJson(document);
        }
        return Failed;
    }
}

int run(const Invocation& invocation)
{
    const std::string& command = invocation.command;
    if (command == "check-config")
        return checkConfig(invocation);
    std::unique_ptr<Ctl> ctl;
    try {
        ctl = std::make_unique<Ctl>(invocation);
    } catch (const sdbus::Error& e) {
        std::fprintf(stderr, "gpuswapctl: cannot reach the system bus: %s\n", shown(e.getMessage()).c_str());
        return Unreachable;
    }
    try {
        if (command == "status")
            return ctl->status();
        if (command == "prepare" || command == "release")
            return ctl->handOver();
        if (command == "rebind")
            return ctl->rebind();
        if (command == "resize-bar")
            return ctl->resizeBar();
        if (command == "diagnose")
            return ctl->diagnose();
        if (command == "monitor")
            return ctl->monitor();
        return ctl->reload();
    } catch (const sdbus::Error& e) {
        return ctl->report(e);
    }
}

} // namespace

int main(int argc, char* argv[])
{
    const auto parsed = client::parseCommandLine(std::vector<std::string>(argv, argv + argc), kVersion);
    if (const auto* text = std::get_if<client::Text>(&parsed)) {
        std::printf("%s", text->text.c_str());
        return Ok;
    }
    if (const auto* error = std::get_if<client::UsageError>(&parsed)) {
        std::fprintf(stderr, "gpuswapctl: %s\n%s\n", shown(error->problem).c_str(), error->hint.c_str());
        return Usage;
    }
    try {
        return run(std::get<Invocation>(parsed));
    } catch (const std::exception& e) {
        std::fprintf(stderr, "gpuswapctl: %s\n", shown(e.what()).c_str());
        return Failed;
    }
}
