// SPDX-License-Identifier: GPL-2.0-or-later
#include "command_line.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

using namespace gpuswap::client;
using testing::HasSubstr;
using testing::StartsWith;

namespace {

ParsedCommandLine parse(std::vector<std::string> words)
{
    words.insert(words.begin(), "gpuswapctl");
    return parseCommandLine(words, "1.2.3");
}

Invocation invocation(std::vector<std::string> words)
{
    auto parsed = parse(std::move(words));
    if (const auto* error = std::get_if<UsageError>(&parsed))
        ADD_FAILURE() << "usage error: " << error->problem;
    return std::holds_alternative<Invocation>(parsed) ? std::get<Invocation>(parsed) : Invocation{};
}

UsageError usageError(std::vector<std::string> words)
{
    auto parsed = parse(std::move(words));
    EXPECT_TRUE(std::holds_alternative<UsageError>(parsed));
    return std::holds_alternative<UsageError>(parsed) ? std::get<UsageError>(parsed) : UsageError{};
}

std::string text(std::vector<std::string> words)
{
    auto parsed = parse(std::move(words));
    EXPECT_TRUE(std::holds_alternative<Text>(parsed));
    return std::holds_alternative<Text>(parsed) ? std::get<Text>(parsed).text : std::string();
}

} // namespace

TEST(CommandLine, OptionsGoBeforeOrAfterTheCommand)
{
    const auto a = invocation({"-j", "status"});
    const auto b = invocation({"status", "--json"});
    EXPECT_EQ(a.command, "status");
    EXPECT_TRUE(a.json && b.json);
    const auto c = invocation({"prepare", "-n", "win11", "--no-ask-password"});
    EXPECT_EQ(c.arguments, std::vector<std::string>{"win11"});
    EXPECT_TRUE(c.dryRun);
    EXPECT_FALSE(c.askPassword);
    EXPECT_TRUE(invocation({"prepare", "win11"}).askPassword);
}

TEST(CommandLine, DoubleDashEndsOptions)
{
    const auto parsed = invocation({"prepare", "--", "-odd-vm"});
    EXPECT_EQ(parsed.arguments, std::vector<std::string>{"-odd-vm"});
}

TEST(CommandLine, UsageErrorsNameTheProblemAndTheHelp)
{
    EXPECT_EQ(usageError({}).problem, "no command given");
    EXPECT_EQ(usageError({"frobnicate"}).problem, "unknown command \"frobnicate\"");
    EXPECT_EQ(usageError({"frobnicate"}).hint, "Try 'gpuswapctl --help'.");
    EXPECT_EQ(usageError({"-x", "status"}).problem, "unknown option -x");
    EXPECT_EQ(usageError({"--bogus", "status"}).problem, "unknown option --bogus");
    EXPECT_EQ(usageError({"prepare"}).problem, "prepare wants VM");
    EXPECT_EQ(usageError({"prepare"}).hint, "Try 'gpuswapctl prepare --help'.");
    EXPECT_EQ(usageError({"status", "extra"}).problem, "status wants no arguments");
    EXPECT_EQ(usageError({"status", "--force"}).problem, "--force does not apply to status");
    EXPECT_EQ(usageError({"release", "w", "--default"}).problem, "--default does not apply to release");
    EXPECT_EQ(usageError({"rebind", "03:00.0"}).problem, "rebind wants ADDRESS DRIVER (or --default ADDRESS)");
    EXPECT_EQ(usageError({"rebind", "--default", "03:00.0", "amdgpu"}).problem, "rebind --default takes only the ADDRESS");
}

TEST(CommandLine, AddressesInEveryFormBecomeTheKernelsForm)
{
    EXPECT_EQ(invocation({"rebind", "03:00.1", "vfio-pci"}).arguments,
              (std::vector<std::string>{"0000:03:00.1", "vfio-pci"}));
    EXPECT_EQ(invocation({"rebind", "--default", "pci_0000_03_00_1"}).arguments,
              (std::vector<std::string>{"0000:03:00.1", ""}));
    EXPECT_EQ(invocation({"resize-bar", "0000:03:00.0", "0", "8G"}).arguments[0], "0000:03:00.0");
    EXPECT_THAT(usageError({"rebind", "3:0.1", "vfio-pci"}).problem,
                HasSubstr("\"3:0.1\" is not a PCI address: use 0000:03:00.0, 03:00.0 (lspci) or pci_0000_03_00_0"));
}

TEST(CommandLine, ResizeBarTakesAnIndexAndASize)
{
    const auto parsed = invocation({"resize-bar", "03:00.0", "2", "256M"});
    EXPECT_EQ(parsed.bar, 2U);
    EXPECT_EQ(parsed.size, 256ULL << 20);
    EXPECT_EQ(invocation({"resize-bar", "03:00.0", "0", "8589934592"}).size, 8ULL << 30);
    EXPECT_EQ(usageError({"resize-bar", "03:00.0", "6", "8G"}).problem, "\"6\" is not a BAR index 0-5");
    EXPECT_THAT(usageError({"resize-bar", "03:00.0", "0", "3G"}).problem, StartsWith("\"3G\" is not a size"));
    EXPECT_THAT(usageError({"resize-bar", "03:00.0", "0", "99999999999999999999"}).problem, StartsWith("\"9999"));
}

TEST(CommandLine, HelpAndVersion)
{
    EXPECT_EQ(text({"--version"}), "gpuswapctl 1.2.3\n");
    EXPECT_EQ(text({"status", "--version"}), "gpuswapctl 1.2.3\n");
    const std::string overview = text({"--help"});
    EXPECT_THAT(overview, HasSubstr("  check-config [FILE]"));
    EXPECT_THAT(overview, HasSubstr("Exit status:"));
    EXPECT_EQ(text({"-h"}), overview);
    EXPECT_EQ(text({"frobnicate", "--help"}), overview);
    const std::string prepare = text({"prepare", "--help"});
    EXPECT_THAT(prepare, StartsWith("Usage: gpuswapctl [OPTIONS] prepare VM\n"));
    EXPECT_THAT(prepare, HasSubstr("--dry-run"));
    EXPECT_THAT(prepare, testing::Not(HasSubstr("--force")));
    EXPECT_THAT(text({"-h", "rebind"}), HasSubstr("--force"));
    EXPECT_THAT(text({"rebind", "-h"}), HasSubstr("ADDRESS: 0000:03:00.0, 03:00.0"));
}

TEST(CommandLine, ParsesAgainFromScratch)
{
    EXPECT_FALSE(invocation({"status"}).json);
    EXPECT_TRUE(invocation({"status", "-j"}).json);
    EXPECT_FALSE(invocation({"status"}).json);
}
