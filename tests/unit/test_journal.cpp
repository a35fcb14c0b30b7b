// SPDX-License-Identifier: GPL-2.0-or-later
#include "journal.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <unistd.h>

using namespace gpuswap;

namespace {

class JournalTest : public ::testing::Test {
protected:
    void SetUp() override
    {
        directory = std::filesystem::temp_directory_path() / ("gpuswap-journal-" + std::to_string(getpid()));
        std::filesystem::remove_all(directory);
    }
    void TearDown() override { std::filesystem::remove_all(directory); }
    std::filesystem::path directory;
};

PciAddress address(const char* text) { return *PciAddress::parse(text); }

} // namespace

TEST_F(JournalTest, NoFileIsAnEmptyState)
{
    EXPECT_EQ(Journal(directory).load(), DaemonState{});
}

TEST_F(JournalTest, RoundTripsPreparedVmsAndTheOperation)
{
    DaemonState state;
    state.prepared["win11"] = {{{address("0000:03:00.0"), {"amdgpu", "", {{0, uint64_t{16} << 30}}}},
                                {address("0000:03:00.1"), {"snd_hda_intel", "", {}}}},
                               "display-manager.service", {}};
    state.prepared["single-gpu"] = {{{address("0000:0a:00.0"), {"amdgpu", "", {}}}}, "gdm.service",
                                    {"nvidia-persistenced.service", "gdm.service"}};
    state.operation = OperationRecord{"release:win11", {{address("0000:03:00.0"), {"vfio-pci", "vfio-pci", {}}}},
                                      {"nvidia-persistenced.service", "gdm.service"}, 4, true};
    const Journal journal(directory);
    journal.save(state);
    EXPECT_EQ(journal.load(), state);
    EXPECT_FALSE(std::filesystem::exists(journal.path().string() + ".new"));
    EXPECT_EQ(std::filesystem::status(journal.path()).permissions() & std::filesystem::perms::others_read,
              std::filesystem::perms::none);
    state.operation.reset();
    journal.save(state);
    EXPECT_EQ(journal.load(), state);
}

TEST_F(JournalTest, CorruptFileSaysWhere)
{
    std::filesystem::create_directories(directory);
    std::ofstream(directory / "state.json") << "{\"prepared\": ";
    try {
        Journal(directory).load();
        FAIL() << "a corrupt journal loaded";
    } catch (const std::runtime_error& e) {
        EXPECT_NE(std::string(e.what()).find("state.json is corrupt"), std::string::npos) << e.what();
    }
}
