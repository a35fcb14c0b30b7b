// SPDX-License-Identifier: GPL-2.0-or-later
// gpuswapctl: the command line of gpuswapd. See gpuswapctl(1).
#include "bar_size.hpp"
#include "client_bus.hpp"
#include "text.hpp"
#include "version.hpp"

#include <nlohmann/json.hpp>
#include <sdbus-c++/sdbus-c++.h>
#include <signal.h>
#include <systemd/sd-login.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace {

using namespace gpuswap;
using nlohmann::json;

enum ExitCode { Ok = 0, Failed = 1, Usage = 2, NotAuthorized = 3, Unreachable = 4 };

// The daemon answers state-changing calls when the work is done: minutes in the worst case.
constexpr auto kLongCall = std::chrono::minutes(30);

using Options = std::map<std::string, sdbus::Variant>;
using ManagedObjects = std::map<sdbus::ObjectPath, std::map<std::string, std::map<std::string, sdbus::Variant>>>;
using Finding = sdbus::Struct<std::string, std::string, std::string>;
using Bar = sdbus::Struct<uint32_t, uint64_t, uint64_t>;

struct Arguments {
    std::vector<std::string> words;
    bool json = false;
    bool dryRun = false;
    bool force = false;
    bool defaultDriver = false;
    bool askPassword = true;
};

const char* const kUsage =
    "Usage: gpuswapctl [OPTIONS] COMMAND\n"
    "Hands GPUs between the desktop and VFIO virtual machines through gpuswapd.\n\n"
    "Commands:\n"
    "  status                      daemon, profiles, prepared VMs and the GPUs\n"
    "  prepare VM                  hand VM's devices over to vfio-pci\n"
    "  release VM                  give them back to their host drivers\n"
    "  rebind ADDRESS DRIVER       bind a device to DRIVER (--default: the kernel's choice)\n"
    "  resize-bar ADDRESS BAR SIZE resize a BAR (SIZE: 8G, 256M or bytes)\n"
    "  diagnose [VM]               what stands in the way of a hand-over\n"
    "  monitor                     follow what gpuswapd does\n"
    "  reload                      read the configuration again\n\n"
    "Options:\n"
    "  --dry-run                   show the steps without changing anything\n"
    "  --force                     rebind even while processes hold the device\n"
    "  --default                   rebind to the kernel's default driver\n"
    "  --json                      machine-readable output of status and diagnose\n"
    "  --no-ask-password           never ask for a password\n"
    "  -h, --help                  this help\n"
    "  --version                   the version of gpuswapctl\n\n"
    "Exit status: 0 done, 1 failed, 2 usage, 3 not authorized, 4 gpuswapd unreachable.\n";

// Everything gpuswapd or the system says is escaped before it reaches a terminal.
std::string shown(const std::string& text) { return escapeText(text); }

int usage(const char* problem)
{
    std::fprintf(stderr, "gpuswapctl: %s\n\n%s", problem, kUsage);
    return Usage;
}

int report(const sdbus::Error& error)
{
    std::fprintf(stderr, "gpuswapctl: %s\n", shown(error.getMessage()).c_str());
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

class Ctl {
public:
    explicit Ctl(const Arguments& arguments)
        : arguments_(arguments), connection_(sdbus::createSystemBusConnection()), manager_(client::managerProxy(*connection_))
    {
    }

    int status();
    int handOver(const std::string& method, const std::string& vm);
    int rebind(const std::string& address, const std::string& driver);
    int resizeBar(const std::string& address, uint32_t bar, uint64_t size);
    int diagnose(const std::string& vm);
    int monitor();
    int reload();

private:
    // The options of a state-changing call.
    Options options() const;
    // Runs a long call asynchronously so Progress signals show while it runs.
    template <typename Result>
    std::optional<Result> longCall(const std::string& method, const std::function<void(sdbus::MethodCall&)>& arguments,
                                   std::optional<sdbus::Error>& failure);
    template <typename Value>
    Value property(const std::string& name)
    {
        return manager_->getProperty(bus::PropertyName{name}).onInterface(bus::InterfaceName{client::kManagerInterface}).get<Value>();
    }

    const Arguments& arguments_;
    std::unique_ptr<sdbus::IConnection> connection_;
    std::unique_ptr<sdbus::IProxy> manager_;
};

Options Ctl::options() const
{
    Options options;
    if (arguments_.dryRun)
        options.emplace("dry-run", sdbus::Variant(true));
    if (arguments_.askPassword && isatty(STDIN_FILENO) != 0)
        options.emplace("interactive", sdbus::Variant(true));
    return options;
}

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

json deviceJson(const std::string& path, const std::map<std::string, sdbus::Variant>& properties)
{
    json bars = json::array();
    for (const Bar& bar : properties.at("Bars").get<std::vector<Bar>>())
        bars.push_back({{"index", std::get<0>(bar)}, {"size", std::get<1>(bar)}, {"supported", std::get<2>(bar)}});
    return {{"path", path},
            {"address", properties.at("Address").get<std::string>()},
            {"vendor_id", properties.at("VendorId").get<uint16_t>()},
            {"device_id", properties.at("DeviceId").get<uint16_t>()},
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
    if (arguments_.json) {
        std::printf("%s\n", status.dump(2).c_str());
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
    std::printf("Operation:    %s\n\n", operation.empty() ? "idle" : operation.c_str());
    std::printf("%-13s %-16s %-14s %5s  %-34s %s\n", "ADDRESS", "DEVICE", "DRIVER", "GROUP", "BARS", "DRM");
    for (const json& device : devices) {
        char name[32];
        std::snprintf(name, sizeof name, "%04x:%04x %s%s", device["vendor_id"].get<unsigned>(),
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
        const std::string driver = shown(device["driver"]);
        const int group = device["iommu_group"];
        std::printf("%-13s %-16s %-14s %5s  %-34s %s\n", shown(device["address"]).c_str(), name,
                    driver.empty() ? "-" : driver.c_str(), group < 0 ? "-" : std::to_string(group).c_str(),
                    bars.empty() ? "-" : bars.c_str(), drm.empty() ? "-" : drm.c_str());
    }
    std::printf("\n* the boot display\n");
    return Ok;
}

template <typename Result>
std::optional<Result> Ctl::longCall(const std::string& method, const std::function<void(sdbus::MethodCall&)>& arguments,
                                    std::optional<sdbus::Error>& failure)
{
    PasswordAgent agent(arguments_.askPassword && !arguments_.dryRun);
    if (!arguments_.json)
        manager_->uponSignal(bus::SignalName{"Progress"})
            .onInterface(bus::InterfaceName{client::kManagerInterface})
            .call([](const std::string&, uint32_t step, uint32_t steps, const std::string& description) {
                std::printf("[%u/%u] %s\n", step, steps, shown(description).c_str());
                std::fflush(stdout);
            });
    bus::finishRegistration(*manager_);
    auto call = manager_->createMethodCall(bus::InterfaceName{client::kManagerInterface}, bus::MethodName{method});
    arguments(call);
    std::optional<Result> result;
    bool done = false;
    bus::callAsync(*manager_, call, [&](sdbus::MethodReply& reply, const sdbus::Error* error) {
        if (error != nullptr) {
            failure = *error;
        } else {
            Result value{};
            reply >> value;
            result = value;
        }
        done = true;
        connection_->leaveEventLoop();
    }, kLongCall);
    if (!done)
        connection_->enterEventLoop();
    return result;
}

int Ctl::handOver(const std::string& method, const std::string& vm)
{
    std::optional<sdbus::Error> failure;
    const auto steps = longCall<std::vector<std::string>>(
        method, [&](sdbus::MethodCall& call) { call << vm << options(); }, failure);
    if (!steps)
        return report(*failure);
    if (steps->empty())
        std::printf("%s: nothing to do\n", shown(vm).c_str());
    else if (arguments_.dryRun)
        for (size_t i = 0; i < steps->size(); ++i)
            std::printf("would %zu. %s\n", i + 1, shown((*steps)[i]).c_str());
    else
        std::printf("%s: done in %zu steps\n", shown(vm).c_str(), steps->size());
    return Ok;
}

int Ctl::rebind(const std::string& address, const std::string& driver)
{
    Options options = this->options();
    if (arguments_.force)
        options.emplace("force", sdbus::Variant(true));
    std::optional<sdbus::Error> failure;
    const auto previous = longCall<std::string>(
        "RebindDevice", [&](sdbus::MethodCall& call) { call << address << driver << options; }, failure);
    if (!previous)
        return report(*failure);
    std::printf("%s: was on %s\n", shown(address).c_str(), previous->empty() ? "no driver" : shown(*previous).c_str());
    return Ok;
}

int Ctl::resizeBar(const std::string& address, uint32_t bar, uint64_t size)
{
    std::optional<sdbus::Error> failure;
    const auto previous = longCall<uint64_t>(
        "ResizeBar", [&](sdbus::MethodCall& call) { call << address << bar << size << options(); }, failure);
    if (!previous)
        return report(*failure);
    std::printf("%s BAR %u: %s -> %s\n", shown(address).c_str(), bar, formatSize(*previous).c_str(), formatSize(size).c_str());
    return Ok;
}

int Ctl::diagnose(const std::string& vm)
{
    std::vector<Finding> findings;
    manager_->callMethod(bus::MethodName{"Diagnose"}).onInterface(bus::InterfaceName{client::kManagerInterface}).withArguments(vm).storeResultsTo(findings);
    if (arguments_.json) {
        json list = json::array();
        for (const Finding& finding : findings)
            list.push_back({{"severity", std::get<0>(finding)}, {"code", std::get<1>(finding)}, {"message", std::get<2>(finding)}});
        std::printf("%s\n", list.dump(2).c_str());
    } else if (findings.empty()) {
        std::printf("No problems found.\n");
    } else {
        for (const Finding& finding : findings)
            std::printf("%-7s %-22s %s\n", shown(std::get<0>(finding)).c_str(), shown(std::get<1>(finding)).c_str(),
                        shown(std::get<2>(finding)).c_str());
    }
    const bool errors = std::any_of(findings.begin(), findings.end(), [](const Finding& f) { return std::get<0>(f) == "error"; });
    return errors ? Failed : Ok;
}

int Ctl::monitor()
{
    manager_->uponSignal(bus::SignalName{"Progress"})
        .onInterface(bus::InterfaceName{client::kManagerInterface})
        .call([](const std::string& operation, uint32_t step, uint32_t steps, const std::string& description) {
            std::printf("%s [%u/%u] %s\n", shown(operation).c_str(), step, steps, shown(description).c_str());
            std::fflush(stdout);
        });
    manager_->uponSignal(bus::SignalName{"OperationFinished"})
        .onInterface(bus::InterfaceName{client::kManagerInterface})
        .call([](const std::string& operation, bool success, const std::string& name, const std::string& message) {
            if (success)
                std::printf("%s finished\n", shown(operation).c_str());
            else
                std::printf("%s failed: %s: %s\n", shown(operation).c_str(), shown(name).c_str(), shown(message).c_str());
            std::fflush(stdout);
        });
    bus::finishRegistration(*manager_);
    connection_->enterEventLoop();
    return Ok;
}

int Ctl::reload()
{
    PasswordAgent agent(arguments_.askPassword);
    manager_->callMethod(bus::MethodName{"Reload"}).onInterface(bus::InterfaceName{client::kManagerInterface}).withTimeout(kLongCall);
    return Ok;
}

std::optional<uint64_t> parseSize(const std::string& text)
{
    if (auto bytes = parseBarSize(text))
        return bytes;
    if (text.empty() || text.find_first_not_of("0123456789") != std::string::npos)
        return std::nullopt;
    return std::stoull(text);
}

int run(const Arguments& arguments)
{
    const auto& w = arguments.words;
    const std::string& command = w[0];
    const auto expect = [&](size_t count) { return w.size() == count; };
    Ctl ctl(arguments);
    if (command == "status" && expect(1))
        return ctl.status();
    if ((command == "prepare" || command == "release") && expect(2))
        return ctl.handOver(command == "prepare" ? "PrepareVM" : "ReleaseVM", w[1]);
    if (command == "rebind" && (expect(3) || (expect(2) && arguments.defaultDriver)))
        return ctl.rebind(w[1], arguments.defaultDriver ? std::string() : w[2]);
    if (command == "resize-bar" && expect(4)) {
        const auto size = parseSize(w[3]);
        if (!size || w[2].empty() || w[2].find_first_not_of("0123456789") != std::string::npos || w[2].size() > 2)
            return usage("resize-bar wants ADDRESS BAR SIZE, for example 0000:03:00.0 0 8G");
        return ctl.resizeBar(w[1], static_cast<uint32_t>(std::stoul(w[2])), *size);
    }
    if (command == "diagnose" && (expect(1) || expect(2)))
        return ctl.diagnose(w.size() == 2 ? w[1] : std::string());
    if (command == "monitor" && expect(1))
        return ctl.monitor();
    if (command == "reload" && expect(1))
        return ctl.reload();
    return usage(("bad command line for \"" + command + "\"").c_str());
}

} // namespace

int main(int argc, char* argv[])
{
    Arguments arguments;
    for (int i = 1; i < argc; ++i) {
        const std::string word = argv[i];
        if (word == "-h" || word == "--help") {
            std::printf("%s", kUsage);
            return Ok;
        }
        if (word == "--version") {
            std::printf("gpuswapctl %s\n", kVersion);
            return Ok;
        }
        if (word == "--json")
            arguments.json = true;
        else if (word == "--dry-run")
            arguments.dryRun = true;
        else if (word == "--force")
            arguments.force = true;
        else if (word == "--default")
            arguments.defaultDriver = true;
        else if (word == "--no-ask-password")
            arguments.askPassword = false;
        else if (word.starts_with("--"))
            return usage(("unknown option " + word).c_str());
        else
            arguments.words.push_back(word);
    }
    if (arguments.words.empty())
        return usage("no command given");
    try {
        return run(arguments);
    } catch (const sdbus::Error& e) {
        return report(e);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "gpuswapctl: %s\n", e.what());
        return Failed;
    }
}
