// SPDX-License-Identifier: GPL-2.0-or-later
// gpuswapd: parse the command line, load the configuration, run the daemon.
#include "config.hpp"
#include "daemon.hpp"
#include "log.hpp"
#include "version.hpp"

#include <getopt.h>

#include <cstdio>
#include <string>

namespace {

void printUsage(FILE* out)
{
    std::fprintf(out,
                 "Usage: gpuswapd [OPTIONS]\n"
                 "Hands GPUs between the desktop and VFIO virtual machines (D-Bus name org.gpuswap1).\n\n"
                 "  --config=PATH      configuration file (default /etc/gpuswap/gpuswapd.json)\n"
                 "  --state-dir=PATH   where interrupted operations are recorded (default /run/gpuswapd)\n"
                 "  --bus-address=ADDR serve this D-Bus address instead of the system bus (tests)\n"
                 "  --log-level=LEVEL  debug, info, warning or error (default info)\n"
                 "  --check-config=PATH  check a configuration file as a reload would and exit\n"
                 "                     (0 valid, 1 not)\n"
                 "  --version          print the version\n"
                 "  --help             print this help\n");
}

} // namespace

int main(int argc, char* argv[])
{
    enum { Config = 1, StateDir, BusAddress, LogLevel, CheckConfig, Version, Help };
    static const option longOptions[] = {
        {"config", required_argument, nullptr, Config},
        {"state-dir", required_argument, nullptr, StateDir},
        {"bus-address", required_argument, nullptr, BusAddress},
        {"log-level", required_argument, nullptr, LogLevel},
        {"check-config", required_argument, nullptr, CheckConfig},
        {"version", no_argument, nullptr, Version},
        {"help", no_argument, nullptr, Help},
        {nullptr, 0, nullptr, 0},
    };
    gpuswap::DaemonOptions options;
    gpuswap::log::Level level = gpuswap::log::Level::Info;
    int option = 0;
    while ((option = getopt_long(argc, argv, "", longOptions, nullptr)) != -1) {
        switch (option) {
        case Config: options.configPath = optarg; break;
        case StateDir: options.stateDir = optarg; break;
        case BusAddress: options.busAddress = optarg; break;
        case LogLevel: {
            const auto parsed = gpuswap::log::parseLevel(optarg);
            if (!parsed) {
                std::fprintf(stderr, "gpuswapd: unknown log level \"%s\" (debug, info, warning, error)\n", optarg);
                return 2;
            }
            level = *parsed;
            break;
        }
        case CheckConfig:
            try {
                const auto checked = gpuswap::readConfigFile(optarg);
                std::printf("%s: valid, %zu VM profile(s)\n", optarg, checked.vms.size());
                return 0;
            } catch (const gpuswap::ConfigError& e) {
                std::fprintf(stderr, "%s\n", e.what());
                return 1;
            }
        case Version: std::printf("gpuswapd %s\n", gpuswap::kVersion); return 0;
        case Help: printUsage(stdout); return 0;
        default: printUsage(stderr); return 2;
        }
    }
    if (optind < argc) {
        std::fprintf(stderr, "gpuswapd: unexpected argument \"%s\"\n", argv[optind]);
        return 2;
    }
    gpuswap::log::setup(level);

    gpuswap::Config config;
    try {
        config = gpuswap::loadConfig(options.configPath);
    } catch (const gpuswap::ConfigError& e) {
        gpuswap::log::error(std::string("refusing to start with a bad configuration: ") + e.what(),
                            {{"CONFIG", options.configPath.string()}});
        return 1;
    }
    return gpuswap::runDaemon(options, std::move(config));
}
