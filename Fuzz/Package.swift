// swift-tools-version: 6.1
import PackageDescription

// libFuzzer targets for Tapedeck: one executable per harness, built with the fuzzer and address sanitizers by
// `scripts/fuzz` (see docs/fuzzing.md). The harnesses themselves live in the library (Sources/Tapedeck/Fuzzing),
// so the unit tests run the parsers' harnesses too; reaching them needs a debug (testable) build.
let fuzzers = [
    ("fuzz-tape", "TapeFuzzer"),
    ("fuzz-matcher", "MatcherFuzzer"),
    ("fuzz-endpoint", "EndpointFuzzer"),
    ("fuzz-duration", "DurationFuzzer"),
    ("fuzz-pace", "PaceFuzzer"),
    ("fuzz-config", "ConfigurationFuzzer"),
    ("fuzz-timestamp", "TimestampFuzzer"),
]

let package = Package(
    name: "tapedeck-fuzz",
    platforms: [.macOS(.v13)],
    products: fuzzers.map { .executable(name: $0.0, targets: [$0.1]) },
    dependencies: [.package(name: "tapedeck", path: "..")],
    targets: [
        .target(
            name: "FuzzSupport",
            dependencies: [.product(name: "Tapedeck", package: "tapedeck")]
        )
    ]
        + fuzzers.map {
            .executableTarget(
                name: $0.1,
                dependencies: ["FuzzSupport", .product(name: "Tapedeck", package: "tapedeck")]
            )
        },
    swiftLanguageModes: [.v6]
)
