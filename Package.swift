// swift-tools-version: 6.1
import PackageDescription

let strict: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

let package = Package(
    name: "swift-multiprocessing",
    platforms: [.macOS(.v15)],
    // What a package that depends on this one can use: the library and the `mp` tool. The
    // examples (squares, pi), the benchmark (mp-bench) and the test fixture are executable
    // targets of this package only: `swift run squares` and `swift build` build them here,
    // and no user of the library sees them.
    products: [
        .library(name: "Multiprocessing", targets: ["Multiprocessing"]),
        .executable(name: "mp", targets: ["mp"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-crypto", "3.12.3"..<"5.0.0"),
        // `swift package generate-documentation --target Multiprocessing` (DocC); no code of it is linked.
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.5.0"),
    ],
    targets: [
        .target(name: "CMultiprocessingShim"),
        .target(
            name: "Multiprocessing",
            dependencies: [
                "CMultiprocessingShim", .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            exclude: [
                "Workers/README.md", "Wire/README.md", "Scheduler/README.md", "Launchers/README.md",
                "Journal/README.md",
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "mp",
            dependencies: [
                "Multiprocessing",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "squares",
            dependencies: ["Multiprocessing"],
            path: "Examples/squares",
            exclude: ["job.slurm"],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "pi",
            dependencies: [
                "Multiprocessing",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Examples/pi",
            exclude: ["job.slurm", "job-nodes.slurm"],
            swiftSettings: strict
        ),
        // The benchmark workloads (Benchmarks/run.py runs them against Python's pools).
        .executableTarget(
            name: "mp-bench",
            dependencies: [
                "Multiprocessing",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                // SHA-256 for the hash-files workload (the library already depends on it).
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            path: "Benchmarks/mp-bench",
            swiftSettings: strict
        ),
        // Worker-capable programs that the integration tests drive (the test runner's own
        // binary cannot be a worker: its main is the test harness).
        .executableTarget(
            name: "mp-fixture",
            dependencies: ["Multiprocessing", .product(name: "Logging", package: "swift-log")],
            path: "Tests/Fixtures/mp-fixture",
            swiftSettings: strict
        ),
        .testTarget(
            name: "MultiprocessingTests",
            dependencies: ["Multiprocessing", "mp-fixture"],
            swiftSettings: strict
        ),
    ],
    swiftLanguageModes: [.v6]
)
