// swift-tools-version: 6.1
import PackageDescription

// Micro-benchmarks for Tapedeck, kept out of the product: package-benchmark suites under Benchmarks/ (run with
// `swift package benchmark`), and `tapedeck-microbench`, the same workloads as one-shot commands printing JSON
// for `scripts/bench`. They reach the library's internals through `@_spi(Benchmarks)`. See docs/benchmarks.md.
let package = Package(
    name: "tapedeck-benchmarks",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "tapedeck-microbench", targets: ["Microbench"])
    ],
    dependencies: [
        .package(name: "tapedeck", path: ".."),
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
    ],
    targets: [
        .target(
            name: "TapedeckWorkloads",
            dependencies: [
                .product(name: "Tapedeck", package: "tapedeck"),
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),
        .executableTarget(
            name: "Microbench",
            dependencies: [
                "TapedeckWorkloads",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(
            name: "StoreInsert",
            dependencies: [
                "TapedeckWorkloads",
                .product(name: "Benchmark", package: "benchmark"),
            ],
            path: "Benchmarks/StoreInsert",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        .executableTarget(
            name: "ReplayChoice",
            dependencies: [
                "TapedeckWorkloads",
                .product(name: "Benchmark", package: "benchmark"),
            ],
            path: "Benchmarks/ReplayChoice",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
    ],
    swiftLanguageModes: [.v6]
)
