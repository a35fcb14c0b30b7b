// SPDX-License-Identifier: GPL-2.0-or-later
#include "config.hpp"

#include "bar_size.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <system_error>
#include <fstream>
#include <limits>
#include <set>
#include <sstream>

namespace gpuswap {

using nlohmann::json;

namespace {

// nlohmann_json keeps the last of duplicate keys without a word; this SAX builder
// refuses them and remembers where in the document it was.
class StrictBuilder : public nlohmann::json_sax<json> {
public:
    json root;
    std::string duplicateKeyPath;
    std::optional<size_t> syntaxErrorByte;
    std::string syntaxErrorWhat;

    bool null() override { return addScalar(json(nullptr)); }
    bool boolean(bool value) override { return addScalar(json(value)); }
    bool number_integer(number_integer_t value) override { return addScalar(json(value)); }
    bool number_unsigned(number_unsigned_t value) override { return addScalar(json(value)); }
    bool number_float(number_float_t value, const string_t&) override { return addScalar(json(value)); }
    bool string(string_t& value) override { return addScalar(json(value)); }
    bool binary(binary_t& value) override { return addScalar(json::binary(value)); }

    bool start_object(std::size_t) override
    {
        json* object = add(json::object());
        stack_.push_back({object, {}, {}});
        return true;
    }
    bool key(string_t& name) override
    {
        Frame& frame = stack_.back();
        if (!frame.keys.insert(name).second) {
            duplicateKeyPath = pathOf(name);
            return false;
        }
        frame.pendingKey = name;
        return true;
    }
    bool end_object() override
    {
        stack_.pop_back();
        return true;
    }
    bool start_array(std::size_t) override
    {
        json* array = add(json::array());
        stack_.push_back({array, {}, {}});
        return true;
    }
    bool end_array() override
    {
        stack_.pop_back();
        return true;
    }
    bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception& error) override
    {
        if (const auto* parseError = dynamic_cast<const json::parse_error*>(&error))
            syntaxErrorByte = parseError->byte;
        syntaxErrorWhat = error.what();
        return false;
    }

private:
    struct Frame {
        json* value;
        std::set<std::string> keys;
        std::string pendingKey;
    };

    bool addScalar(json value)
    {
        add(std::move(value));
        return true;
    }

    json* add(json value)
    {
        if (stack_.empty()) {
            root = std::move(value);
            return &root;
        }
        json& parent = *stack_.back().value;
        if (parent.is_object())
            return &(parent[stack_.back().pendingKey] = std::move(value));
        parent.push_back(std::move(value));
        return &parent.back();
    }
    std::string pathOf(const std::string& leaf) const
    {
        std::string path;
        for (const Frame& frame : stack_) {
            if (&frame == &stack_.back())
                break;
            const json& parent = *frame.value;
            path += parent.is_object() ? frame.pendingKey : std::to_string(parent.size() - 1);
            path += '/';
        }
        return path + leaf;
    }

    std::vector<Frame> stack_;
};

std::string nlohmannMessage(const std::string& what)
{
    // "[json.exception.parse_error.101] parse error at line 1, column 2: syntax error ..."
    const auto colon = what.find(": ");
    return colon == std::string::npos ? what : what.substr(colon + 2);
}

std::pair<size_t, size_t> lineAndColumn(std::string_view text, size_t byte)
{
    // nlohmann reports the byte after the offending character (1-based position).
    const size_t offset = std::min(byte == 0 ? 0 : byte - 1, text.size());
    size_t line = 1;
    size_t column = 1;
    for (size_t i = 0; i < offset; ++i) {
        if (text[i] == '\n') {
            ++line;
            column = 1;
        } else {
            ++column;
        }
    }
    return {line, column};
}

class Validator {
public:
    explicit Validator(std::string fileName) : file_(std::move(fileName)) {}

    [[noreturn]] void fail(const std::string& path, const std::string& what) const
    {
        throw ConfigError(file_ + ": " + (path.empty() ? "(top level)" : path) + ": " + what);
    }

    void expectObject(const json& value, const std::string& path, std::initializer_list<std::string_view> allowed) const
    {
        if (!value.is_object())
            fail(path, "expected an object, found " + std::string(value.type_name()));
        for (const auto& [key, _] : value.items())
            if (std::find(allowed.begin(), allowed.end(), key) == allowed.end())
                fail(join(path, key), "unknown key (allowed: " + listOf(allowed) + ")");
    }

    const std::string& expectString(const json& value, const std::string& path) const
    {
        if (!value.is_string())
            fail(path, "expected a string, found " + std::string(value.type_name()));
        return value.get_ref<const std::string&>();
    }

    template <typename Enum>
    Enum expectChoice(const json& value, const std::string& path,
                      std::initializer_list<std::pair<std::string_view, Enum>> choices) const
    {
        const std::string& text = expectString(value, path);
        std::string names;
        for (const auto& [name, choice] : choices) {
            if (text == name)
                return choice;
            names += (names.empty() ? "" : ", ") + std::string("\"") + std::string(name) + "\"";
        }
        fail(path, "\"" + text + "\" is not one of " + names);
    }

    // An array whose items `parse` checks, each at most once (`name` says it in the message).
    template <typename Item, typename Parse, typename Name>
    std::vector<Item> expectUniqueList(const json& value, const std::string& path, const char* what, Parse parse,
                                       Name name) const
    {
        if (!value.is_array())
            fail(path, std::string("expected an array of ") + what + ", found " + value.type_name());
        std::vector<Item> items;
        for (size_t i = 0; i < value.size(); ++i) {
            const std::string itemPath = join(path, std::to_string(i));
            Item item = parse(value[i], itemPath);
            if (std::find(items.begin(), items.end(), item) != items.end())
                fail(itemPath, name(item) + " is listed twice");
            items.push_back(std::move(item));
        }
        return items;
    }

    static std::string join(const std::string& path, std::string_view key)
    {
        return path.empty() ? std::string(key) : path + "/" + std::string(key);
    }

private:
    static std::string listOf(std::initializer_list<std::string_view> names)
    {
        std::string text;
        for (auto name : names)
            text += (text.empty() ? "" : ", ") + std::string(name);
        return text;
    }

    std::string file_;
};

Timeouts parseTimeouts(const Validator& v, const json& value, const std::string& path)
{
    v.expectObject(value, path, {"unit", "bind", "holders"});
    Timeouts timeouts;
    const std::array<std::pair<const char*, std::chrono::milliseconds*>, 3> fields{{
        {"unit", &timeouts.unit}, {"bind", &timeouts.bind}, {"holders", &timeouts.holders}}};
    // An hour: longer than any real driver takes, short enough to catch "forever" typos.
    constexpr int64_t maxMs = 3'600'000;
    for (const auto& [key, field] : fields) {
        if (!value.contains(key))
            continue;
        const json& ms = value.at(key);
        const std::string keyPath = Validator::join(path, key);
        if (!ms.is_number_integer())
            v.fail(keyPath, "expected a whole number of milliseconds, found " + std::string(ms.type_name()));
        const auto count = ms.get<int64_t>();
        if (count <= 0 || count > maxMs)
            v.fail(keyPath, std::to_string(count) + " is outside 1.." + std::to_string(maxMs) + " ms");
        *field = std::chrono::milliseconds(count);
    }
    return timeouts;
}

PciAddress parseAddress(const Validator& v, std::string_view text, const std::string& path)
{
    auto address = PciAddress::parseAnyForm(text);
    if (!address)
        v.fail(path, "\"" + std::string(text) + "\" is not a PCI address (0000:03:00.0, 03:00.0 or pci_0000_03_00_0)");
    return *address;
}

VmProfile parseVm(const Validator& v, const std::string& name, const json& value, const std::string& path)
{
    if (!isValidVmName(name))
        v.fail(path, "a VM name must be 1 to 255 bytes without '/' or control characters");
    v.expectObject(value, path, {"devices", "bars", "display_manager", "holders", "stop_units"});
    VmProfile vm;
    vm.name = name;
    if (value.contains("devices"))
        vm.devices = v.expectUniqueList<PciAddress>(
            value.at("devices"), Validator::join(path, "devices"), "PCI addresses",
            [&v](const json& item, const std::string& itemPath) { return parseAddress(v, v.expectString(item, itemPath), itemPath); },
            [](const PciAddress& address) { return address.str(); });
    if (value.contains("bars")) {
        const json& bars = value.at("bars");
        const std::string barsPath = Validator::join(path, "bars");
        if (!bars.is_object())
            v.fail(barsPath, "expected an object of PCI address to {BAR index: size}, found " +
                                 std::string(bars.type_name()));
        for (const auto& [addressText, sizes] : bars.items()) {
            const std::string devicePath = Validator::join(barsPath, addressText);
            PciAddress address = parseAddress(v, addressText, devicePath);
            if (vm.bars.contains(address))
                v.fail(devicePath, address.str() + " is given twice");
            if (!vm.devices.empty() && std::find(vm.devices.begin(), vm.devices.end(), address) == vm.devices.end())
                v.fail(devicePath, address.str() + " is not in this VM's devices");
            if (!sizes.is_object())
                v.fail(devicePath, "expected an object of BAR index to size, found " + std::string(sizes.type_name()));
            auto& perBar = vm.bars[address];
            for (const auto& [indexText, size] : sizes.items()) {
                const std::string barPath = Validator::join(devicePath, indexText);
                if (indexText.size() != 1 || indexText[0] < '0' || indexText[0] > '5')
                    v.fail(barPath, "\"" + indexText + "\" is not a BAR index 0-5");
                const std::string& sizeText = v.expectString(size, barPath);
                const auto bytes = parseBarSize(sizeText);
                if (!bytes)
                    v.fail(barPath, "\"" + sizeText +
                                        "\" is not a BAR size: a power of two of at least 1M with a suffix "
                                        "K, M, G or T (for example \"256M\", \"8G\")");
                perBar[static_cast<unsigned>(indexText[0] - '0')] = *bytes;
            }
        }
    }
    if (value.contains("display_manager"))
        vm.displayManager = v.expectChoice<DisplayManagerPolicy>(
            value.at("display_manager"), Validator::join(path, "display_manager"),
            {{"restart", DisplayManagerPolicy::Restart}, {"keep", DisplayManagerPolicy::Keep}, {"stop", DisplayManagerPolicy::Stop}});
    if (value.contains("holders"))
        vm.holders = v.expectChoice<HolderPolicy>(value.at("holders"), Validator::join(path, "holders"),
                                                  {{"wait", HolderPolicy::Wait}, {"ignore", HolderPolicy::Ignore}});
    if (value.contains("stop_units"))
        vm.stopUnits = v.expectUniqueList<std::string>(
            value.at("stop_units"), Validator::join(path, "stop_units"), "systemd unit names",
            [&v](const json& item, const std::string& itemPath) {
                const std::string& unit = v.expectString(item, itemPath);
                if (!isValidUnitName(unit))
                    v.fail(itemPath, "\"" + unit + "\" is not a systemd unit name (for example nvidia-persistenced.service)");
                return unit;
            },
            [](const std::string& unit) { return unit; });
    return vm;
}

} // namespace

VmProfile parseVmProfile(const json& profile, const std::string& vmName, const std::string& origin)
{
    return parseVm(Validator(origin), vmName, profile, "");
}

bool isValidVmName(std::string_view name)
{
    if (name.empty() || name.size() > 255)
        return false;
    return std::none_of(name.begin(), name.end(), [](char c) {
        const auto byte = static_cast<unsigned char>(c);
        return c == '/' || byte < 0x20 || byte == 0x7f;
    });
}

bool isValidUnitName(std::string_view name)
{
    static constexpr std::array<std::string_view, 11> suffixes{
        ".service", ".socket", ".target", ".device", ".mount", ".automount",
        ".swap", ".path", ".timer", ".slice", ".scope"};
    if (name.size() > 255)
        return false;
    const auto dot = name.rfind('.');
    if (dot == std::string_view::npos || dot == 0)
        return false;
    if (std::find(suffixes.begin(), suffixes.end(), name.substr(dot)) == suffixes.end())
        return false;
    const std::string_view prefix = name.substr(0, dot);
    if (prefix.front() == '@')
        return false;
    return std::all_of(prefix.begin(), prefix.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) != 0 || std::strchr(":_.\\@-", c) != nullptr;
    });
}

Config parseConfig(std::string_view text, const std::string& fileName)
{
    StrictBuilder builder;
    const bool parsed = json::sax_parse(text, &builder, json::input_format_t::json, true, true);
    if (!builder.duplicateKeyPath.empty())
        throw ConfigError(fileName + ": " + builder.duplicateKeyPath + ": duplicate key");
    if (!parsed) {
        const auto [line, column] = lineAndColumn(text, builder.syntaxErrorByte.value_or(text.size()));
        throw ConfigError(fileName + ":" + std::to_string(line) + ":" + std::to_string(column) +
                          ": syntax error: " + nlohmannMessage(builder.syntaxErrorWhat));
    }

    const Validator v(fileName);
    const json& root = builder.root;
    v.expectObject(root, "", {"display_manager", "timeouts_ms", "vms"});
    Config config;
    if (root.contains("display_manager")) {
        const std::string& unit = v.expectString(root.at("display_manager"), "display_manager");
        if (!isValidUnitName(unit))
            v.fail("display_manager", "\"" + unit + "\" is not a systemd unit name (for example gdm.service)");
        config.displayManagerUnit = unit;
    }
    if (root.contains("timeouts_ms"))
        config.timeouts = parseTimeouts(v, root.at("timeouts_ms"), "timeouts_ms");
    if (root.contains("vms")) {
        const json& vms = root.at("vms");
        if (!vms.is_object())
            v.fail("vms", "expected an object of VM name to profile, found " + std::string(vms.type_name()));
        for (const auto& [name, profile] : vms.items())
            config.vms.emplace(name, parseVm(v, name, profile, Validator::join("vms", name)));
    }
    return config;
}

Config readConfigFile(const std::filesystem::path& path)
{
    std::ifstream file(path, std::ios::binary);
    if (!file)
        throw ConfigError(path.string() + ": cannot read: " + std::error_code(errno, std::generic_category()).message());
    std::ostringstream text;
    text << file.rdbuf();
    if (file.bad())
        throw ConfigError(path.string() + ": cannot read: " + std::error_code(errno, std::generic_category()).message());
    return parseConfig(text.str(), path.string());
}

Config loadConfig(const std::filesystem::path& path)
{
    std::error_code error;
    if (!std::filesystem::exists(path, error) && !error)
        return Config{};
    return readConfigFile(path);
}

} // namespace gpuswap
