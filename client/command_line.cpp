// SPDX-License-Identifier: GPL-2.0-or-later
#include "command_line.hpp"

#include "bar_size.hpp"
#include "pci_address.hpp"

#include <getopt.h>

#include <algorithm>
#include <array>
#include <optional>
#include <string_view>

namespace gpuswap::client {

namespace {

enum Option : unsigned {
    Json = 1U << 0,
    DryRun = 1U << 1,
    Force = 1U << 2,
    Default = 1U << 3,
    NoAskPassword = 1U << 4,
};

struct CommandSpec {
    std::string_view name;
    std::string_view synopsis;     // after "gpuswapctl [OPTIONS] "
    std::string_view summary;      // one line for the overview
    std::string_view description;  // the command's --help
    size_t minArguments;
    size_t maxArguments;
    unsigned options;
};

constexpr unsigned kCallOptions = Json | NoAskPassword;

constexpr std::array<CommandSpec, 9> kCommands{{
    {"status", "status", "the daemon, its profiles, prepared VMs and the GPUs",
     "Shows gpuswapd's version, the VM profiles, which VMs hold their devices, the operation\n"
     "running, and every tracked PCI device with its driver, IOMMU group, BARs and DRM nodes.\n",
     0, 0, Json},
    {"prepare", "prepare VM", "hand VM's devices over to vfio-pci",
     "Does what starting the VM does through the libvirt hook: stops the display manager if\n"
     "the profile says so, moves the devices to vfio-pci, resizes BARs and starts the display\n"
     "manager again. Shows each step and how long it took. A failure rolls everything back.\n",
     1, 1, kCallOptions | DryRun},
    {"release", "release VM", "give VM's devices back to their host drivers",
     "Does what stopping the VM does through the libvirt hook: waits until no program holds\n"
     "the VFIO group, gives each device back to the driver it had and restores its BARs.\n",
     1, 1, kCallOptions | DryRun},
    {"rebind", "rebind ADDRESS DRIVER", "bind one device to DRIVER",
     "Binds the device to DRIVER (vfio-pci is loaded when needed). With --default the kernel\n"
     "picks the driver (DRIVER is then left out). Refused while programs hold the device's\n"
     "DRM or sound nodes, unless --force.\n",
     1, 2, kCallOptions | DryRun | Force | Default},
    {"resize-bar", "resize-bar ADDRESS BAR SIZE", "resize a BAR of a device with no driver bound",
     "Resizes BAR (0-5) to SIZE: a power of two such as 256M or 8G, or bytes. The device's\n"
     "driver is unbound for the resize and bound again.\n",
     3, 3, kCallOptions | DryRun},
    {"diagnose", "diagnose [VM]", "what stands in the way of a hand-over",
     "Checks the IOMMU, vfio-pci, the libvirt hook, the profile's devices, their IOMMU groups\n"
     "and BARs, and says what to change. Exit status 1 when it finds an error.\n",
     0, 1, Json},
    {"monitor", "monitor", "follow what gpuswapd does",
     "Prints every step of every operation and how operations end, until interrupted.\n"
     "With --json, one JSON object per line.\n",
     0, 0, Json},
    {"reload", "reload", "read the configuration file again",
     "Makes gpuswapd read its configuration again. A file with errors is refused and the\n"
     "running configuration stays; check a file first with check-config.\n",
     0, 0, kCallOptions},
    {"check-config", "check-config [FILE]", "check a configuration file without loading it",
     "Checks FILE (default /etc/gpuswap/gpuswapd.json) exactly as reload would, without\n"
     "gpuswapd. Exit status 0 when it is valid, 1 with the error when not.\n",
     0, 1, Json},
}};

constexpr std::string_view kOptionsHelp =
    "  -j, --json              print one JSON document (monitor: one per line)\n"
    "  -n, --dry-run           show the steps without changing anything\n"
    "  -f, --force             rebind even while programs hold the device\n"
    "      --default           rebind to the kernel's default driver\n"
    "      --no-ask-password   never ask for a password\n"
    "  -h, --help              this help, or a command's (gpuswapctl COMMAND --help)\n"
    "      --version           gpuswapctl's version\n";

constexpr std::string_view kAddressForms = "0000:03:00.0, 03:00.0 (lspci) or pci_0000_03_00_0 (virsh nodedev-list)";

constexpr std::string_view kExitHelp =
    "Exit status: 0 done, 1 failed, 2 usage, 3 not authorized, 4 gpuswapd unreachable.\n";

struct OptionName {
    unsigned flag;
    std::string_view name;
};
constexpr std::array<OptionName, 5> kOptionNames{{
    {Json, "--json"}, {DryRun, "--dry-run"}, {Force, "--force"}, {Default, "--default"}, {NoAskPassword, "--no-ask-password"}}};

std::string overview()
{
    std::string text = "Usage: gpuswapctl [OPTIONS] COMMAND\n"
                       "Hands GPUs between the desktop and VFIO virtual machines through gpuswapd.\n\nCommands:\n";
    for (const auto& spec : kCommands) {
        std::string line = "  " + std::string(spec.synopsis);
        line.resize(std::max<size_t>(line.size() + 1, 32), ' ');
        text += line + std::string(spec.summary) + "\n";
    }
    return text + "\nOptions:\n" + std::string(kOptionsHelp) + "\nADDRESS: " + std::string(kAddressForms) + ".\n" +
           std::string(kExitHelp);
}

std::string commandHelp(const CommandSpec& spec)
{
    std::string text = "Usage: gpuswapctl [OPTIONS] " + std::string(spec.synopsis) + "\n" + std::string(spec.description);
    text += "\nOptions:\n";
    size_t start = 0;
    while (start < kOptionsHelp.size()) {
        const size_t end = kOptionsHelp.find('\n', start);
        const std::string_view line = kOptionsHelp.substr(start, end - start + 1);
        start = end + 1;
        const bool general = line.find("--help") != std::string_view::npos || line.find("--version") != std::string_view::npos;
        const bool offered = std::any_of(kOptionNames.begin(), kOptionNames.end(), [&](const OptionName& option) {
            return (spec.options & option.flag) != 0 && line.find(std::string(option.name) + " ") != std::string_view::npos;
        });
        if (general || offered)
            text += line;
    }
    if (spec.synopsis.find("ADDRESS") != std::string_view::npos)
        text += "\nADDRESS: " + std::string(kAddressForms) + ".\n";
    return text + std::string(kExitHelp);
}

const CommandSpec* findCommand(std::string_view name)
{
    const auto it = std::find_if(kCommands.begin(), kCommands.end(), [&](const CommandSpec& spec) { return spec.name == name; });
    return it == kCommands.end() ? nullptr : &*it;
}

UsageError problem(const std::string& what, const CommandSpec* spec = nullptr)
{
    return {what, spec == nullptr ? "Try 'gpuswapctl --help'."
                                  : "Try 'gpuswapctl " + std::string(spec->name) + " --help'."};
}

std::optional<uint64_t> parseSize(const std::string& text)
{
    if (auto bytes = parseBarSize(text))
        return bytes;
    if (text.empty() || text.size() > 19 || text.find_first_not_of("0123456789") != std::string::npos)
        return std::nullopt;
    return std::stoull(text);
}

// The command's own arguments, checked: addresses normalised, BAR and size parsed.
std::optional<UsageError> checkArguments(const CommandSpec& spec, Invocation& invocation)
{
    auto& words = invocation.arguments;
    if (spec.name == "rebind") {
        if (words.size() != (invocation.defaultDriver ? 1U : 2U))
            return problem(invocation.defaultDriver ? "rebind --default takes only the ADDRESS"
                                                    : "rebind wants ADDRESS DRIVER (or --default ADDRESS)",
                           &spec);
        if (invocation.defaultDriver)
            words.emplace_back();
    }
    if (spec.name == "rebind" || spec.name == "resize-bar") {
        const auto address = PciAddress::parseAnyForm(words[0]);
        if (!address)
            return problem("\"" + words[0] + "\" is not a PCI address: use " + std::string(kAddressForms), &spec);
        words[0] = address->str();
    }
    if (spec.name == "resize-bar") {
        if (words[1].size() != 1 || words[1][0] < '0' || words[1][0] > '5')
            return problem("\"" + words[1] + "\" is not a BAR index 0-5", &spec);
        const auto size = parseSize(words[2]);
        if (!size)
            return problem("\"" + words[2] + "\" is not a size: a power of two such as 256M or 8G, or bytes", &spec);
        invocation.bar = static_cast<uint32_t>(words[1][0] - '0');
        invocation.size = *size;
    }
    return std::nullopt;
}

} // namespace

ParsedCommandLine parseCommandLine(const std::vector<std::string>& argv, const std::string& version)
{
    // "--" ends the options: the words after it are arguments even when they start with '-'.
    const auto end = std::find(argv.begin(), argv.end(), "--");
    std::vector<std::string> copies(argv.begin(), end);
    std::vector<char*> pointers;
    pointers.reserve(copies.size() + 1);
    for (auto& word : copies)
        pointers.push_back(word.data());
    pointers.push_back(nullptr);

    enum LongOnly { DefaultOption = 256, NoAskPasswordOption, VersionOption };
    static const std::array<option, 8> longOptions{{
        {"json", no_argument, nullptr, 'j'},
        {"dry-run", no_argument, nullptr, 'n'},
        {"force", no_argument, nullptr, 'f'},
        {"default", no_argument, nullptr, DefaultOption},
        {"no-ask-password", no_argument, nullptr, NoAskPasswordOption},
        {"help", no_argument, nullptr, 'h'},
        {"version", no_argument, nullptr, VersionOption},
        {nullptr, 0, nullptr, 0},
    }};
    Invocation invocation;
    unsigned given = 0;
    bool help = false;
    optind = 0;  // glibc: a full reset, so the parser can run more than once (tests)
    opterr = 0;
    int c = 0;
    while ((c = getopt_long(static_cast<int>(pointers.size() - 1), pointers.data(), "+:jnfh", longOptions.data(), nullptr)) != -1
           || optind < static_cast<int>(pointers.size() - 1)) {
        if (c == -1) {  // a word: the command or one of its arguments; options may follow
            std::string word = pointers[optind++];
            if (invocation.command.empty())
                invocation.command = std::move(word);
            else
                invocation.arguments.push_back(std::move(word));
            continue;
        }
        switch (c) {
        case 'j': invocation.json = true; given |= Json; break;
        case 'n': invocation.dryRun = true; given |= DryRun; break;
        case 'f': invocation.force = true; given |= Force; break;
        case DefaultOption: invocation.defaultDriver = true; given |= Default; break;
        case NoAskPasswordOption: invocation.askPassword = false; given |= NoAskPassword; break;
        case 'h': help = true; break;
        case VersionOption: return Text{"gpuswapctl " + version + "\n"};
        default: {
            const std::string word = pointers[optind - 1];
            const std::string shown = optopt != 0 && !word.starts_with("--") ? std::string("-") + static_cast<char>(optopt) : word;
            return problem("unknown option " + shown);
        }
        }
    }
    for (auto word = end == argv.end() ? end : end + 1; word != argv.end(); ++word) {
        if (invocation.command.empty())
            invocation.command = *word;
        else
            invocation.arguments.push_back(*word);
    }
    const CommandSpec* spec = invocation.command.empty() ? nullptr : findCommand(invocation.command);
    if (help)
        return Text{spec != nullptr ? commandHelp(*spec) : overview()};
    if (invocation.command.empty())
        return problem("no command given");
    if (spec == nullptr)
        return problem("unknown command \"" + invocation.command + "\"");
    for (const auto& option : kOptionNames)
        if ((given & option.flag) != 0 && (spec->options & option.flag) == 0)
            return problem(std::string(option.name) + " does not apply to " + std::string(spec->name), spec);
    const size_t count = invocation.arguments.size();
    if (count < spec->minArguments || count > spec->maxArguments)
        return problem(std::string(spec->name) + " wants " +
                           (spec->maxArguments == 0 ? std::string("no arguments") : std::string(spec->synopsis.substr(spec->name.size() + 1))),
                       spec);
    if (auto error = checkArguments(*spec, invocation))
        return *error;
    return invocation;
}

} // namespace gpuswap::client
